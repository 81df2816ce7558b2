//! k8rs's CNI plugin as a standalone binary, for runtimes other than k8rs (the `k8rs` binary does the same when
//! exec'd with `CNI_COMMAND` set). Copy it into a CNI bin dir under the name of the config's `type`.

fn main() {
    std::process::exit(network::plugin_main());
}
