//! ADD/DEL cost per pod, k8rs's own plugin against the reference plugins (bridge + host-local + portmap +
//! loopback), with and without one hostPort, measured side by side in one run inside throwaway namespaces.
//! Run: `cargo bench -p network --bench cni` (as root).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{attachment, host_port, Netns, Node, Plugins};

const PODS: usize = 20;
const WARMUP: usize = 2;

struct Figures {
    add: Vec<Duration>,
    del: Vec<Duration>,
}

fn percentile(samples: &[Duration], p: f64) -> f64 {
    let mut sorted: Vec<_> = samples.to_vec();
    sorted.sort();
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

async fn measure(plugins: Plugins, with_port: bool) -> Figures {
    let node = Node::new(plugins);
    let pods: Vec<Netns> = (0..PODS + WARMUP).map(|_| Netns::new("-p")).collect();
    let atts: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ports = if with_port { vec![host_port(20000 + i as u16, 8080)] } else { vec![] };
            attachment(p, &format!("bench-{i}"), ports)
        })
        .collect();
    let mut add = Vec::new();
    for (i, att) in atts.iter().enumerate() {
        let started = Instant::now();
        node.cni.add(att).await.expect("ADD");
        if i >= WARMUP {
            add.push(started.elapsed());
        }
    }
    let mut del = Vec::new();
    for (i, att) in atts.iter().enumerate() {
        let started = Instant::now();
        node.cni.del(att).await.expect("DEL");
        if i >= WARMUP {
            del.push(started.elapsed());
        }
    }
    Figures { add, del }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("CNI ADD/DEL per pod, {PODS} pods each, ms (median / p90)\n");
    println!("{:<14} {:<10} {:>17} {:>17}", "case", "plugins", "ADD", "DEL");
    for with_port in [false, true] {
        let case = if with_port { "one hostPort" } else { "no hostPort" };
        // Interleave so both sides see the same machine load.
        let k8rs = measure(Plugins::K8rs, with_port).await;
        let reference = measure(Plugins::Reference, with_port).await;
        for (name, f) in [("k8rs", &k8rs), ("reference", &reference)] {
            println!(
                "{case:<14} {name:<10} {:>8.1} / {:>6.1} {:>8.1} / {:>6.1}",
                percentile(&f.add, 0.5),
                percentile(&f.add, 0.9),
                percentile(&f.del, 0.5),
                percentile(&f.del, 0.9)
            );
        }
        println!(
            "{case:<14} {:<10} {:>17} {:>17}\n",
            "ratio",
            format!("{:.1}x faster", percentile(&reference.add, 0.5) / percentile(&k8rs.add, 0.5)),
            format!("{:.1}x faster", percentile(&reference.del, 0.5) / percentile(&k8rs.del, 0.5)),
        );
    }
}
