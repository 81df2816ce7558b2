//! The CRI log format (`<RFC 3339 nano time> <stream> <F|P> <content>`, one entry per line) and size-based rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longer lines are cut into partial (`P`) entries of this size, as containerd does.
const MAX_ENTRY: usize = 16 * 1024;

/// Splits one stream's bytes into log entries.
pub(super) struct LineSplitter {
    stream: &'static str,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: &'static str) -> Self {
        LineSplitter { stream, pending: Vec::new() }
    }

    /// Appends the entries completed by `chunk` to `out`; an unfinished line waits for more.
    pub fn push(&mut self, chunk: &[u8], time: &str, out: &mut Vec<u8>) {
        self.pending.extend_from_slice(chunk);
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match rest.iter().position(|b| *b == b'\n') {
                Some(n) if n <= MAX_ENTRY => {
                    entry(out, time, self.stream, "F", &rest[..n]);
                    start += n + 1;
                }
                _ if rest.len() >= MAX_ENTRY => {
                    entry(out, time, self.stream, "P", &rest[..MAX_ENTRY]);
                    start += MAX_ENTRY;
                }
                _ => break,
            }
        }
        self.pending.drain(..start);
    }

    /// At end of stream, a last line without newline becomes a partial entry.
    pub fn finish(&mut self, time: &str, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            entry(out, time, self.stream, "P", &self.pending);
            self.pending.clear();
        }
    }
}

fn entry(out: &mut Vec<u8>, time: &str, stream: &str, tag: &str, content: &[u8]) {
    out.extend_from_slice(time.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// The container's log file, rotated to `<path>.1`, `<path>.2`, … (newest first) before it would exceed `max_size`.
pub(super) struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl LogFile {
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path: path.to_path_buf(), file, size, max_size, max_files })
    }

    /// Writes whole entries (newline-terminated), rotating between two entries whenever the next one would not fit;
    /// an entry is never split across files.
    pub fn write(&mut self, entries: &[u8]) -> io::Result<()> {
        let mut start = 0;
        let mut end = 0;
        for entry in entries.split_inclusive(|b| *b == b'\n') {
            let pending = (end - start) as u64;
            if self.max_size > 0 && self.size + pending > 0 && self.size + pending + entry.len() as u64 > self.max_size
            {
                self.file.write_all(&entries[start..end])?;
                self.rotate()?;
                start = end;
            }
            end += entry.len();
        }
        self.file.write_all(&entries[start..end])?;
        self.size += (end - start) as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: usize| {
            let mut p = self.path.as_os_str().to_owned();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.max_files <= 1 {
            std::fs::remove_file(&self.path)?;
        } else {
            remove_if_exists(&numbered(self.max_files - 1))?;
            for n in (1..self.max_files - 1).rev() {
                if numbered(n).exists() {
                    std::fs::rename(numbered(n), numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `2026-11-28T18:00:00.123456789Z`.
pub(super) fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339_nano() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_795_888_800, 123_456_789);
        assert_eq!(rfc3339_nano(t), "2026-11-28T18:00:00.123456789Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_nano(leap), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn splits_lines_partials_and_tail() {
        let mut s = LineSplitter::new("stdout");
        let mut out = Vec::new();
        s.push(b"a\nb", "T", &mut out);
        s.push(b"c\n\nd", "T", &mut out);
        s.finish("T", &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "T stdout F a\nT stdout F bc\nT stdout F \nT stdout P d\n");

        let mut out = Vec::new();
        let long = vec![b'x'; MAX_ENTRY + 5];
        s.push(&long, "T", &mut out);
        s.push(b"\n", "T", &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("T stdout P xxx") && lines[0].len() == "T stdout P ".len() + MAX_ENTRY);
        assert_eq!(lines[1], "T stdout F xxxxx");
    }

    #[test]
    fn rotates_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LogFile::open(&path, 10, 3).unwrap();
        for i in 0..5 {
            log.write(format!("entry-{i}\n").as_bytes()).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "entry-4\n");
        assert_eq!(read(&dir.path().join("0.log.1")), "entry-3\n");
        assert_eq!(read(&dir.path().join("0.log.2")), "entry-2\n");
        assert!(!dir.path().join("0.log.3").exists());

        // One batch holding many entries still rotates between them.
        let batch: String = (5..10).map(|i| format!("entry-{i}\n")).collect();
        log.write(batch.as_bytes()).unwrap();
        assert_eq!(read(&path), "entry-9\n");
        assert_eq!(read(&dir.path().join("0.log.1")), "entry-8\n");
    }
}
