//! Discovery documents, built from the resource registry: aggregated (`apidiscovery.k8s.io` v2 and v2beta1,
//! which kubectl 1.27+ asks for) and legacy (`APIVersions`, `APIGroupList`, `APIResourceList`), and `/version`.

use apimachinery::registry::{self, Group, Resource, GROUPS};
use serde_json::{json, Value};

use crate::metrics_api;

/// Every served group: the registry's, then the ones answered rather than stored (`metrics.k8s.io`).
fn groups() -> impl Iterator<Item = &'static Group> {
    GROUPS.iter().chain(std::iter::once(&metrics_api::API_GROUP))
}

/// The resources of one group version, stored or answered, sorted by name.
fn resources_in(group: &str, version: &str) -> Vec<&'static Resource> {
    registry::resources_in(group, version).chain(metrics_api::resources_in(group, version)).collect()
}

/// The Kubernetes version whose API k8rs serves; kubectl's dispatcher picks `kubectl.1.<minor>` from it.
pub const KUBERNETES_MINOR: &str = "33";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-k8rs.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Which aggregated discovery version the Accept header offers, if any (v2 preferred).
pub fn aggregated_version(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    let offers = |version: &str| {
        accept.split(',').any(|option| {
            let params: Vec<&str> = option.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&format!("v={version}").as_str())
                && params.contains(&"as=APIGroupDiscoveryList")
        })
    };
    ["v2", "v2beta1"].into_iter().find(|v| offers(v))
}

pub fn aggregated_content_type(version: &str) -> String {
    format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
}

/// `GET /api` (core only) or `GET /apis` (every named group) as an `APIGroupDiscoveryList`.
pub fn aggregated(core: bool, version: &str) -> Value {
    let items: Vec<Value> = groups()
        .filter(|g| g.name.is_empty() == core)
        .map(|group| {
            let versions: Vec<Value> = group
                .versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        resources_in(group.name, v).into_iter().map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group.name, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

fn aggregated_resource(resource: &Resource) -> Value {
    let mut entry = json!({
        "resource": resource.name,
        "responseKind": {"group": "", "version": "", "kind": resource.kind},
        "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": resource.singular,
        "verbs": resource.verbs,
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    if !resource.subresources.is_empty() {
        let subresources: Vec<Value> = resource
            .subresources
            .iter()
            .map(|s| {
                let same_gv = s.group == resource.group && s.version == resource.version;
                let (group, version) = if same_gv { ("", "") } else { (s.group, s.version) };
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": group, "version": version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        entry["subresources"] = json!(subresources);
    }
    entry
}

/// `GET /api`: `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_entry(name: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect();
    json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
}

/// `GET /apis`: `APIGroupList`.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = groups().filter(|g| !g.name.is_empty()).map(|g| group_entry(g.name, g.versions)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`: `APIGroup`.
pub fn api_group(name: &str) -> Option<Value> {
    let group = groups().find(|g| g.name == name && !name.is_empty())?;
    let mut entry = group_entry(group.name, group.versions);
    entry["kind"] = json!("APIGroup");
    entry["apiVersion"] = json!("v1");
    Some(entry)
}

/// `GET /api/v1` or `/apis/{group}/{version}`: `APIResourceList`, subresources as `parent/sub` entries.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    if !groups().any(|g| g.name == group && g.versions.contains(&version)) {
        return None;
    }
    let mut resources = Vec::new();
    for resource in resources_in(group, version) {
        let mut entry = json!({
            "name": resource.name,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": resource.verbs,
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        if let Some(hash) = resource.storage_version_hash {
            entry["storageVersionHash"] = json!(hash);
        }
        resources.push(entry);
        for sub in resource.subresources {
            let mut entry = json!({
                "name": format!("{}/{}", resource.name, sub.name),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != resource.group || sub.version != resource.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    resources.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let mut list = json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
    if !group.is_empty() {
        // Upstream's quirk: only the named groups' lists carry apiVersion.
        list["apiVersion"] = json!("v1");
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_picks_the_aggregated_version() {
        let kubectl_130 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(Some(kubectl_130)), Some("v2"));
        let kubectl_127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(aggregated_version(Some(kubectl_127)), Some("v2beta1"));
        assert_eq!(aggregated_version(Some("application/json")), None);
    }

    #[test]
    fn aggregated_discovery_lists_pods_with_their_subresources() {
        let core = aggregated(true, "v2");
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        let resources = items[0]["versions"][0]["resources"].as_array().unwrap();
        let pods = resources.iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let eviction =
            pods["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "eviction").unwrap();
        assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
        let named = aggregated(false, "v2");
        let autoscaling =
            named["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "autoscaling").unwrap();
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
    }

    #[test]
    fn legacy_lists_carry_subresources_as_entries() {
        let apps = api_resource_list("apps", "v1").unwrap();
        let names: Vec<&str> =
            apps["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"deployments/scale"));
        let scale = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!((scale["group"].as_str(), scale["kind"].as_str()), (Some("autoscaling"), Some("Scale")));
        assert!(api_resource_list("", "v1").unwrap().get("apiVersion").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }
}
