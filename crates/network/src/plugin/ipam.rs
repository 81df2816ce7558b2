//! host-local style IPAM: one file per allocated address under `<dataDir>/<network>/`, named by the address and
//! holding the owner's container id and interface. `O_EXCL` creation makes concurrent ADDs (even from separate
//! plugin processes) never share an address, with no lock.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An IPv4 prefix such as 10.42.0.0/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub(crate) fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub(crate) fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) | !self.mask())
    }

    /// The first usable address, which the bridge takes as the pods' gateway.
    pub(crate) fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').ok_or_else(|| format!("{s:?} is not an IPv4 CIDR"))?;
        let addr = addr.parse().map_err(|_| format!("{s:?} is not an IPv4 CIDR"))?;
        let prefix = prefix.parse().ok().filter(|p| *p <= 30).ok_or_else(|| format!("{s:?}: prefix must be 0..=30"))?;
        Ok(Ipv4Net { addr, prefix })
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

pub(crate) struct Ipam {
    dir: PathBuf,
    subnet: Ipv4Net,
}

impl Ipam {
    pub(crate) fn new(dir: &Path, subnet: Ipv4Net) -> Self {
        Ipam { dir: dir.to_path_buf(), subnet }
    }

    fn owner(container_id: &str, ifname: &str) -> String {
        format!("{container_id}\n{ifname}")
    }

    /// Reserves the lowest free address (skipping network, gateway and broadcast) for the container's interface.
    /// `Ok(None)` means the subnet is full.
    pub(crate) fn allocate(&self, container_id: &str, ifname: &str) -> io::Result<Option<Ipv4Addr>> {
        fs::create_dir_all(&self.dir)?;
        let first = u32::from(self.subnet.gateway()) + 1;
        let last = u32::from(self.subnet.broadcast());
        for ip in (first..last).map(Ipv4Addr::from) {
            match OpenOptions::new().write(true).create_new(true).open(self.dir.join(ip.to_string())) {
                Ok(mut file) => {
                    let path = self.dir.join(ip.to_string());
                    // An ownerless reservation could never be freed: give the address back instead.
                    if let Err(e) = file.write_all(Self::owner(container_id, ifname).as_bytes()) {
                        let _ = fs::remove_file(path);
                        return Err(e);
                    }
                    return Ok(Some(ip));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The addresses held by the container's interface.
    pub(crate) fn find(&self, container_id: &str, ifname: &str) -> io::Result<Vec<Ipv4Addr>> {
        let owner = Self::owner(container_id, ifname);
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else { continue };
            // A file can vanish under a concurrent DEL; it is then simply not ours.
            if fs::read_to_string(entry.path()).is_ok_and(|o| o.trim_end() == owner) {
                found.push(ip);
            }
        }
        Ok(found)
    }

    /// Frees every address the container's interface holds; freeing nothing is not an error.
    pub(crate) fn release(&self, container_id: &str, ifname: &str) -> io::Result<Vec<Ipv4Addr>> {
        let ips = self.find(container_id, ifname)?;
        for ip in &ips {
            match fs::remove_file(self.dir.join(ip.to_string())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(ips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let net: Ipv4Net = "10.42.3.7/24".parse().unwrap();
        assert_eq!(net.network(), Ipv4Addr::new(10, 42, 3, 0));
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 42, 3, 255));
        assert_eq!(net.to_string(), "10.42.3.0/24");
        assert!("10.42.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.42.0.0/31".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn allocates_distinct_skips_reserved_and_frees_by_owner() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), "10.9.0.0/30".parse().unwrap());
        // A /30 has exactly one address left after network, gateway and broadcast.
        assert_eq!(ipam.allocate("a", "eth0").unwrap(), Some(Ipv4Addr::new(10, 9, 0, 2)));
        assert_eq!(ipam.allocate("b", "eth0").unwrap(), None);
        assert!(ipam.release("b", "eth0").unwrap().is_empty());
        assert_eq!(ipam.find("a", "eth0").unwrap(), vec![Ipv4Addr::new(10, 9, 0, 2)]);
        assert_eq!(ipam.release("a", "eth0").unwrap(), vec![Ipv4Addr::new(10, 9, 0, 2)]);
        assert_eq!(ipam.allocate("b", "eth0").unwrap(), Some(Ipv4Addr::new(10, 9, 0, 2)));
    }
}
