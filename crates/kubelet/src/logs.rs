//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`, written by the shim) read back as
//! `kubectl logs` shows them: tail, since, timestamps, byte limit, and follow across rotations.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

const FOLLOW_POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    /// Entries older than this (RFC 3339, compared as text after normalisation) are skipped.
    pub since: Option<String>,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
}

/// One CRI log entry.
struct Entry<'a> {
    time: &'a str,
    partial: bool,
    text: &'a [u8],
}

fn parse(line: &[u8]) -> Option<Entry<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    Some(Entry { time, partial: tag.first() == Some(&b'P'), text })
}

/// The files of one container attempt, oldest first: rotated ones (`N.log.*`), then `N.log`.
fn files(current: &Path) -> Vec<PathBuf> {
    let name = current.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut rotated: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(current.parent().unwrap_or(Path::new(".")))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.")))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
    rotated.sort();
    rotated.into_iter().map(|(_, p)| p).chain(std::iter::once(current.to_path_buf())).collect()
}

/// Formats entries into the user's lines; `pending_partial` carries a partial line's state between chunks.
struct Formatter {
    options: Options,
    line_start: bool,
    sent: usize,
}

impl Formatter {
    fn entry(&mut self, entry: &Entry<'_>, out: &mut Vec<u8>) {
        if self.options.since.as_deref().is_some_and(|since| normalise(entry.time) < normalise(since)) {
            return;
        }
        if self.options.timestamps && self.line_start {
            out.extend_from_slice(entry.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(entry.text);
        if !entry.partial {
            out.push(b'\n');
        }
        self.line_start = !entry.partial;
    }

    /// Applies the byte limit; false once it is reached.
    fn limit(&mut self, out: &mut Vec<u8>) -> bool {
        if let Some(limit) = self.options.limit_bytes {
            let left = limit.saturating_sub(self.sent);
            if out.len() >= left {
                out.truncate(left);
                self.sent = limit;
                return false;
            }
        }
        self.sent += out.len();
        true
    }
}

/// RFC 3339 timestamps of different precision compare correctly once the fraction is padded.
fn normalise(time: &str) -> String {
    let body = time.trim_end_matches('Z');
    let (seconds, fraction) = body.split_once('.').unwrap_or((body, ""));
    format!("{seconds}.{fraction:0<9}")
}

/// Streams a container attempt's log into `tx`. `running` says whether more may still come (for follow).
pub fn stream(path: PathBuf, options: Options, running: impl Fn() -> bool + Send + 'static, tx: mpsc::Sender<Bytes>) {
    std::thread::spawn(move || {
        let mut formatter = Formatter { options: options.clone(), line_start: true, sent: 0 };
        // Everything written so far, with tail applied over whole lines.
        let mut all = Vec::new();
        let paths = files(&path);
        for file in &paths {
            if let Ok(mut f) = std::fs::File::open(file) {
                let _ = f.read_to_end(&mut all);
            }
        }
        let complete_end = all.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut lines: Vec<&[u8]> = all[..complete_end].split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        if let Some(tail) = options.tail_lines {
            // Count user lines: a run of partial entries ends with one full entry.
            let mut full_seen = 0;
            let mut start = lines.len();
            for (i, line) in lines.iter().enumerate().rev() {
                if parse(line).is_some_and(|e| !e.partial) {
                    if full_seen == tail {
                        break;
                    }
                    full_seen += 1;
                }
                start = i;
            }
            lines.drain(..start);
        }
        let mut out = Vec::new();
        for line in &lines {
            if let Some(entry) = parse(line) {
                formatter.entry(&entry, &mut out);
            }
        }
        if !formatter.limit(&mut out) {
            let _ = tx.blocking_send(Bytes::from(out));
            return;
        }
        if !out.is_empty() && tx.blocking_send(Bytes::from(out)).is_err() {
            return;
        }
        if !options.follow {
            return;
        }
        // Follow: keep reading the current file from where the snapshot ended, reopening it after a rotation.
        let current_size_at_snapshot = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let earlier: u64 =
            paths[..paths.len() - 1].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
        let snapshot_in_current = (complete_end as u64).saturating_sub(earlier).min(current_size_at_snapshot);
        let mut file = std::fs::File::open(&path).ok();
        let mut inode = file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.ino());
        let mut position = snapshot_in_current;
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let mut chunk = Vec::new();
            if let Some(f) = file.as_mut() {
                if f.seek(SeekFrom::Start(position)).is_ok() {
                    let _ = f.read_to_end(&mut chunk);
                    position += chunk.len() as u64;
                }
            }
            carry.extend_from_slice(&chunk);
            let mut out = Vec::new();
            while let Some(end) = carry.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = carry.drain(..=end).collect();
                if let Some(entry) = parse(&line[..line.len() - 1]) {
                    formatter.entry(&entry, &mut out);
                }
            }
            if !out.is_empty() {
                let more = formatter.limit(&mut out);
                if tx.blocking_send(Bytes::from(out)).is_err() || !more {
                    return;
                }
            }
            if chunk.is_empty() {
                let now_inode = std::fs::metadata(&path).ok().map(|m| m.ino());
                if now_inode.is_some() && now_inode != inode {
                    // Rotated: what is left in the old file was read above; start the new one from its beginning.
                    file = std::fs::File::open(&path).ok();
                    inode = now_inode;
                    position = 0;
                    continue;
                }
                if !running() {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                std::thread::sleep(FOLLOW_POLL);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(path: &Path, options: Options) -> String {
        let (tx, mut rx) = mpsc::channel(16);
        stream(path.to_path_buf(), options, || false, tx);
        let mut text = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            text.extend_from_slice(&chunk);
        }
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn tail_since_timestamps_limit_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(
            &path,
            "2026-01-01T00:00:01.5Z stdout F one\n2026-01-01T00:00:02Z stderr F two\n\
             2026-01-01T00:00:03Z stdout P thr\n2026-01-01T00:00:03.1Z stdout F ee\n",
        )
        .unwrap();
        assert_eq!(collect(&path, Options::default()), "one\ntwo\nthree\n");
        assert_eq!(collect(&path, Options { tail_lines: Some(1), ..Default::default() }), "three\n");
        assert_eq!(collect(&path, Options { tail_lines: Some(0), ..Default::default() }), "");
        assert_eq!(
            collect(&path, Options { since: Some("2026-01-01T00:00:02Z".into()), ..Default::default() }),
            "two\nthree\n"
        );
        assert_eq!(
            collect(&path, Options { timestamps: true, tail_lines: Some(2), ..Default::default() }),
            "2026-01-01T00:00:02Z two\n2026-01-01T00:00:03Z three\n"
        );
        assert_eq!(collect(&path, Options { limit_bytes: Some(6), ..Default::default() }), "one\ntw");
        std::fs::write(dir.path().join("0.log.1"), "2026-01-01T00:00:00Z stdout F zero\n").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options().write(true).open(dir.path().join("0.log.1")).unwrap().set_modified(old).unwrap();
        assert_eq!(collect(&path, Options::default()), "zero\none\ntwo\nthree\n");
    }
}
