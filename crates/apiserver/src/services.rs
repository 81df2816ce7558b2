//! The Service strategy: upstream's defaults, and cluster IP and node port allocation.
//!
//! Each allocated address or port is a key of its own in the store, created only if absent, so allocations are
//! unique under concurrent creates and across several API servers sharing one store; deleting the Service
//! deletes its keys.

use std::net::Ipv4Addr;

use apimachinery::status::{Status, StatusCause};
use serde_json::{json, Value};
use storage::{RangeRequest, StoreError};

use crate::rest::store_error;
use crate::State;

const IP_PREFIX: &str = "/registry/k8rs/serviceips/";
const PORT_PREFIX: &str = "/registry/k8rs/nodeports/";
pub const NODE_PORTS: std::ops::RangeInclusive<u32> = 30000..=32767;

/// An IPv4 CIDR such as 10.43.0.0/16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    prefix: u32,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("{text:?} is not an IPv4 CIDR such as 10.43.0.0/16");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().ok().filter(|p| (8..=30).contains(p)).ok_or_else(bad)?;
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr { base: u32::from(address) & mask, prefix })
    }

    /// Usable addresses: all but the network and broadcast addresses.
    fn size(self) -> u32 {
        (1u32 << (32 - self.prefix)) - 2
    }

    /// The n-th usable address (0-based): the first is the `kubernetes` Service's.
    pub fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1 + n)
    }

    fn contains(self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.base && ip - self.base <= self.size()
    }
}

fn invalid(service: &Value, field: &str, message: String) -> Status {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    Status::invalid("Service", "", name, vec![StatusCause::invalid(field, message)])
}

/// Upstream's defaults for a new Service (types.go markers and SetDefaults_Service).
pub fn default(service: &mut Value) {
    let spec = &mut service["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec["type"].as_str().unwrap_or_default().is_empty() {
        spec["type"] = json!("ClusterIP");
    }
    let kind = spec["type"].as_str().unwrap_or_default().to_string();
    if spec["sessionAffinity"].as_str().unwrap_or_default().is_empty() {
        spec["sessionAffinity"] = json!("None");
    }
    for port in spec["ports"].as_array_mut().into_iter().flatten() {
        if port["protocol"].as_str().unwrap_or_default().is_empty() {
            port["protocol"] = json!("TCP");
        }
        let target = &port["targetPort"];
        if target.is_null() || target == &json!(0) || target == &json!("") {
            port["targetPort"] = port["port"].clone();
        }
    }
    if kind == "ExternalName" {
        return;
    }
    if spec.get("internalTrafficPolicy").is_none_or(Value::is_null) {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer")
        && spec.get("externalTrafficPolicy").is_none_or(Value::is_null)
    {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if kind == "LoadBalancer" && spec.get("allocateLoadBalancerNodePorts").is_none_or(Value::is_null) {
        spec["allocateLoadBalancerNodePorts"] = json!(true);
    }
    spec["ipFamilyPolicy"] = json!(spec["ipFamilyPolicy"].as_str().unwrap_or("SingleStack"));
    spec["ipFamilies"] = json!(["IPv4"]);
    if service.get("status").is_none_or(Value::is_null) {
        service["status"] = json!({"loadBalancer": {}});
    }
}

/// Checks what must hold before anything is allocated.
pub fn validate(service: &Value) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    let spec = &service["spec"];
    let kind = spec["type"].as_str().unwrap_or_default();
    if !matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        causes.push(StatusCause::new(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: {kind:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    if ports.is_empty() && kind != "ExternalName" && spec["clusterIP"] != "None" {
        causes.push(StatusCause::required("spec.ports"));
    }
    for (i, port) in ports.iter().enumerate() {
        match port["port"].as_i64() {
            Some(1..=65535) => {}
            None => causes.push(StatusCause::required(format!("spec.ports[{i}].port"))),
            Some(p) => causes.push(StatusCause::invalid(
                format!("spec.ports[{i}].port"),
                format!("Invalid value: {p}: must be between 1 and 65535, inclusive"),
            )),
        }
        if ports.len() > 1 && port["name"].as_str().unwrap_or_default().is_empty() {
            causes.push(StatusCause::required(format!("spec.ports[{i}].name")));
        }
    }
    causes
}

/// What a Service holds in the allocators, to release if its create fails or when it is deleted.
#[derive(Debug, Default)]
pub struct Allocation {
    keys: Vec<String>,
}

impl Allocation {
    pub async fn release(self, state: &State) {
        for key in self.keys {
            if let Err(error) = state.store.delete(&key, None).await {
                tracing::warn!(%key, %error, "cannot release a service allocation");
            }
        }
    }
}

/// The allocation keys a stored Service holds.
pub fn held(service: &Value) -> Allocation {
    let mut keys = Vec::new();
    for ip in service["spec"]["clusterIPs"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if ip.parse::<Ipv4Addr>().is_ok() {
            keys.push(format!("{IP_PREFIX}{ip}"));
        }
    }
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        if let Some(node_port) = port["nodePort"].as_u64() {
            keys.push(format!("{PORT_PREFIX}{node_port}"));
        }
    }
    Allocation { keys }
}

/// Claims a free key `key(n)` for some `n` in `candidates` (the keys in use live under `prefix`).
async fn claim(
    state: &State,
    prefix: &str,
    key: impl Fn(u32) -> String,
    candidates: std::ops::Range<u32>,
    owner: &str,
) -> Result<Option<u32>, Status> {
    let existing = state
        .store
        .range(RangeRequest { prefix: prefix.to_string(), ..Default::default() })
        .await
        .map_err(store_error)?;
    let taken: std::collections::HashSet<String> = existing.kvs.into_iter().map(|kv| kv.key).collect();
    let size = candidates.end.saturating_sub(candidates.start);
    if size == 0 {
        return Ok(None);
    }
    // Start at a random place, as upstream does, so deleted addresses are not handed out again at once.
    let start = u32::from_le_bytes(crate::objects::random_bytes()) % size;
    for i in 0..size {
        let n = candidates.start + (start + i) % size;
        let candidate = key(n);
        if taken.contains(&candidate) {
            continue;
        }
        match state.store.create(&candidate, owner.as_bytes().to_vec()).await {
            Ok(_) => return Ok(Some(n)),
            Err(StoreError::AlreadyExists { .. }) => continue,
            Err(other) => return Err(store_error(other)),
        }
    }
    Ok(None)
}

async fn claim_exact(state: &State, key: String, owner: &str) -> Result<bool, Status> {
    match state.store.create(&key, owner.as_bytes().to_vec()).await {
        Ok(_) => Ok(true),
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(other) => Err(store_error(other)),
    }
}

/// Allocates the cluster IP and node ports a new Service needs, honouring requested ones.
pub async fn allocate(state: &State, service: &mut Value, owner: &str) -> Result<Allocation, Status> {
    let mut allocation = Allocation::default();
    let result = allocate_into(state, service, owner, &mut allocation).await;
    if result.is_err() {
        allocation.release(state).await;
        return result.map(|_| Allocation::default());
    }
    Ok(allocation)
}

async fn allocate_into(
    state: &State,
    service: &mut Value,
    owner: &str,
    allocation: &mut Allocation,
) -> Result<(), Status> {
    let cidr = state.service_cidr;
    let kind = service["spec"]["type"].as_str().unwrap_or_default().to_string();
    if kind == "ExternalName" {
        return Ok(());
    }
    let requested = service["spec"]["clusterIP"].as_str().unwrap_or_default().to_string();
    if requested == "None" {
        service["spec"]["clusterIPs"] = json!(["None"]);
    } else if !requested.is_empty() {
        let ip: Ipv4Addr = requested.parse().map_err(|_| {
            invalid(service, "spec.clusterIPs[0]", format!("Invalid value: {requested:?}: must be a valid IP address"))
        })?;
        if !cidr.contains(ip) {
            return Err(invalid(
                service,
                "spec.clusterIPs[0]",
                format!("Invalid value: {requested:?}: provided IP is not in the valid range. The range of valid IPs is {}/{}", Ipv4Addr::from(cidr.base), cidr.prefix),
            ));
        }
        let key = format!("{IP_PREFIX}{ip}");
        if !claim_exact(state, key.clone(), owner).await? {
            return Err(invalid(
                service,
                "spec.clusterIPs[0]",
                format!("Invalid value: {requested:?}: provided IP is already allocated"),
            ));
        }
        allocation.keys.push(key);
        service["spec"]["clusterIPs"] = json!([requested]);
    } else {
        let key = |n: u32| format!("{IP_PREFIX}{}", cidr.nth(n));
        // The first address belongs to the `kubernetes` Service.
        let n = claim(state, IP_PREFIX, key, 1..cidr.size(), owner)
            .await?
            .ok_or_else(|| Status::service_unavailable("failed to allocate a serviceIP: range is full"))?;
        let ip = cidr.nth(n).to_string();
        allocation.keys.push(format!("{IP_PREFIX}{ip}"));
        service["spec"]["clusterIP"] = json!(ip);
        service["spec"]["clusterIPs"] = json!([ip]);
    }
    if !matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        return Ok(());
    }
    let ports = service["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut allocated = Vec::with_capacity(ports.len());
    for (i, mut port) in ports.into_iter().enumerate() {
        match port["nodePort"].as_u64() {
            Some(wanted) if wanted > 0 => {
                let field = format!("spec.ports[{i}].nodePort");
                if !NODE_PORTS.contains(&(wanted as u32)) {
                    return Err(invalid(service, &field, format!("Invalid value: {wanted}: provided port is not in the valid range. The range of valid ports is 30000-32767")));
                }
                let key = format!("{PORT_PREFIX}{wanted}");
                if !claim_exact(state, key.clone(), owner).await? {
                    return Err(invalid(
                        service,
                        &field,
                        format!("Invalid value: {wanted}: provided port is already allocated"),
                    ));
                }
                allocation.keys.push(key);
            }
            _ => {
                let key = |n: u32| format!("{PORT_PREFIX}{n}");
                let n = claim(state, PORT_PREFIX, key, *NODE_PORTS.start()..NODE_PORTS.end() + 1, owner)
                    .await?
                    .ok_or_else(|| Status::service_unavailable("failed to allocate a nodePort: range is full"))?;
                allocation.keys.push(format!("{PORT_PREFIX}{n}"));
                port["nodePort"] = json!(n);
            }
        }
        allocated.push(port);
    }
    service["spec"]["ports"] = json!(allocated);
    Ok(())
}

/// On update: cluster IPs cannot change, and allocated node ports are kept when the client omits them.
pub fn keep_allocations(old: &Value, new: &mut Value) -> Result<(), Status> {
    let old_ip = old["spec"]["clusterIP"].clone();
    match new["spec"]["clusterIP"].as_str() {
        None | Some("") => {
            new["spec"]["clusterIP"] = old_ip;
            new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
        Some(ip) if Some(ip) != old_ip.as_str() => {
            return Err(invalid(new, "spec.clusterIPs[0]", format!("Invalid value: {ip:?}: may not change once set")));
        }
        Some(_) => new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone(),
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let wants_node_ports = matches!(new["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer"));
    for port in new["spec"]["ports"].as_array_mut().into_iter().flatten().filter_map(Value::as_object_mut) {
        if !wants_node_ports {
            // A ClusterIP Service has no node ports; the old ones are released after the write.
            port.remove("nodePort");
        } else if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) == 0 {
            let same = old_ports.iter().find(|p| p["port"] == port["port"] && p["protocol"] == port["protocol"]);
            if let Some(node_port) = same.and_then(|p| p.get("nodePort")) {
                port.insert("nodePort".into(), node_port.clone());
            }
        }
    }
    Ok(())
}

/// On update of a NodePort or LoadBalancer Service: claims a node port for each port that has none and each
/// requested one the old Service did not hold. The caller writes, then releases what the old Service held and
/// the new one does not ([`release_dropped`]), or on failure releases what this claimed.
pub async fn claim_node_ports(state: &State, old: &Value, new: &mut Value, owner: &str) -> Result<Allocation, Status> {
    let mut allocation = Allocation::default();
    if !matches!(new["spec"]["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
        return Ok(allocation);
    }
    let held = held(old).keys;
    let ports = new["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let mut claimed = Vec::with_capacity(ports.len());
    for (i, mut port) in ports.into_iter().enumerate() {
        let result = match port["nodePort"].as_u64().unwrap_or(0) {
            0 => {
                let key = |n: u32| format!("{PORT_PREFIX}{n}");
                match claim(state, PORT_PREFIX, key, *NODE_PORTS.start()..NODE_PORTS.end() + 1, owner).await {
                    Ok(Some(n)) => {
                        allocation.keys.push(format!("{PORT_PREFIX}{n}"));
                        port["nodePort"] = json!(n);
                        Ok(())
                    }
                    Ok(None) => Err(Status::service_unavailable("failed to allocate a nodePort: range is full")),
                    Err(status) => Err(status),
                }
            }
            wanted if held.contains(&format!("{PORT_PREFIX}{wanted}")) => Ok(()),
            wanted => {
                let field = format!("spec.ports[{i}].nodePort");
                let key = format!("{PORT_PREFIX}{wanted}");
                if !NODE_PORTS.contains(&(wanted as u32)) {
                    Err(invalid(new, &field, format!("Invalid value: {wanted}: provided port is not in the valid range. The range of valid ports is 30000-32767")))
                } else {
                    match claim_exact(state, key.clone(), owner).await {
                        Ok(true) => {
                            allocation.keys.push(key);
                            Ok(())
                        }
                        Ok(false) => Err(invalid(
                            new,
                            &field,
                            format!("Invalid value: {wanted}: provided port is already allocated"),
                        )),
                        Err(status) => Err(status),
                    }
                }
            }
        };
        if let Err(status) = result {
            allocation.release(state).await;
            return Err(status);
        }
        claimed.push(port);
    }
    new["spec"]["ports"] = json!(claimed);
    Ok(allocation)
}

/// After an update is written: releases what the old Service held and the new one does not.
pub async fn release_dropped(state: &State, old: &Value, new: &Value) {
    let kept = held(new).keys;
    let dropped = held(old).keys.into_iter().filter(|key| !kept.contains(key)).collect();
    Allocation { keys: dropped }.release(state).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_bound_addresses() {
        let cidr = Cidr::parse("10.43.0.0/16").unwrap();
        assert_eq!(cidr.nth(0), Ipv4Addr::new(10, 43, 0, 1));
        assert!(cidr.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!(Cidr::parse("10.43.0.0").is_err());
        assert!(Cidr::parse("10.43.0.0/33").is_err());
    }

    #[test]
    fn services_get_upstream_defaults() {
        let mut service = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        default(&mut service);
        let spec = &service["spec"];
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert!(validate(&service).is_empty());
        let mut bad = json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 0}, {"port": 1}]}});
        default(&mut bad);
        let fields: Vec<String> = validate(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.ports[0].port", "spec.ports[0].name", "spec.ports[1].name"]);
    }
}
