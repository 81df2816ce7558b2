//! What configMap, secret, downwardAPI and projected volumes hold, as upstream computes it: a ConfigMap's or
//! Secret's keys (all of them, or the `items` with their paths and modes), the downward API's fields, and for a
//! projected volume the union of such sources and service account tokens. The result is a payload for the atomic
//! writer; two files at one path are an error.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Secret};
use kube::api::Api;

use crate::atomic_writer::{File, Payload};
use crate::spec;
use crate::tokens::TokenManager;

/// Permission bits of a volume's files unless `defaultMode` or an item's `mode` says otherwise (0644).
const DEFAULT_MODE: u32 = 0o644;

/// Where a volume's or an environment's keys come from.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    pub fn noun(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }

    fn key_noun(self) -> &'static str {
        match self {
            Source::ConfigMap => "config",
            Source::Secret => "secret",
        }
    }
}

/// A volume's `defaultMode` as permission bits, 0644 when unset.
pub fn default_mode(default_mode: Option<i32>) -> u32 {
    item_mode(default_mode, DEFAULT_MODE)
}

/// An item's `mode` as permission bits, the volume's default when unset.
fn item_mode(mode: Option<i32>, default_mode: u32) -> u32 {
    mode.map_or(default_mode, |m| m as u32 & 0o777)
}

/// The files of a ConfigMap (data and binaryData) or a Secret in `namespace`; none when it is optional and missing.
pub async fn keys(
    client: &kube::Client,
    namespace: &str,
    source: Source,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
) -> Result<Payload, String> {
    let data = match source {
        Source::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(name).await.map(|o| {
            o.map(|o| {
                let mut data: BTreeMap<String, Vec<u8>> =
                    o.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                data.extend(o.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                data
            })
        }),
        Source::Secret => Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map(|o| o.map(|o| o.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect())),
    };
    match data {
        Ok(Some(data)) => key_files(source, &data, items, optional, default_mode),
        Ok(None) if optional => Ok(Payload::new()),
        Ok(None) => Err(format!("{} \"{name}\" not found", source.noun())),
        Err(error) => Err(format!("cannot read {} \"{name}\": {}", source.noun(), crate::api_message(&error))),
    }
}

/// Every key as a file of its name, or only the `items`; an item whose key is missing is an error unless the
/// source is optional.
fn key_files(
    source: Source,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: u32,
) -> Result<Payload, String> {
    let Some(items) = items.filter(|items| !items.is_empty()) else {
        return Ok(data.iter().map(|(k, v)| (k.clone(), File { data: v.clone(), mode: default_mode })).collect());
    };
    let mut files = Payload::new();
    for item in items {
        match data.get(&item.key) {
            Some(bytes) => {
                let file = File { data: bytes.clone(), mode: item_mode(item.mode, default_mode) };
                insert(&mut files, item.path.clone(), file)?
            }
            None if optional => {}
            None => {
                return Err(format!(
                    "{} references non-existent {} key: {}",
                    source.noun(),
                    source.key_noun(),
                    item.key
                ))
            }
        }
    }
    Ok(files)
}

/// The downward API's files: pod metadata (`fieldRef`) and container resources (`resourceFieldRef`).
pub fn downward(pod: &Pod, items: &[DownwardAPIVolumeFile], default_mode: u32) -> Result<Payload, String> {
    let mut files = Payload::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            spec::metadata_field(pod, &field.field_path)
                .ok_or_else(|| format!("unsupported fieldPath {:?}", field.field_path))?
        } else if let Some(resource) = &item.resource_field_ref {
            let name = resource.container_name.as_deref().unwrap_or_default();
            let container = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    format!("resourceFieldRef {:?}: the pod has no container {name:?}", resource.resource)
                })?;
            spec::resource_field(container, resource)?
        } else {
            continue;
        };
        let file = File { data: value.into_bytes(), mode: item_mode(item.mode, default_mode) };
        insert(&mut files, item.path.clone(), file)?;
    }
    Ok(files)
}

/// A projected volume's files: each source's, the tokens from `tokens`, all with the volume's `defaultMode` unless
/// an item says otherwise.
pub async fn projected(
    client: &kube::Client,
    tokens: &mut TokenManager,
    pod: &Pod,
    projected: &ProjectedVolumeSource,
) -> Result<Payload, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mode = default_mode(projected.default_mode);
    let mut files = Payload::new();
    for source in projected.sources.iter().flatten() {
        let more = if let Some(c) = &source.config_map {
            let optional = c.optional == Some(true);
            keys(client, namespace, Source::ConfigMap, &c.name, c.items.as_deref(), optional, mode).await?
        } else if let Some(s) = &source.secret {
            let optional = s.optional == Some(true);
            keys(client, namespace, Source::Secret, &s.name, s.items.as_deref(), optional, mode).await?
        } else if let Some(d) = &source.downward_api {
            downward(pod, d.items.as_deref().unwrap_or_default(), mode)?
        } else if let Some(token) = &source.service_account_token {
            let value = tokens.token(pod, token).await?;
            Payload::from([(token.path.clone(), File { data: value.into_bytes(), mode })])
        } else {
            return Err("only configMap, secret, downwardAPI and serviceAccountToken sources of a projected volume \
                        are supported on k8rs nodes yet"
                .into());
        };
        for (path, file) in more {
            insert(&mut files, path, file)?;
        }
    }
    Ok(files)
}

/// Whether a projected volume holds a service account token (and so is written again on renewal).
pub fn holds_token(projected: &ProjectedVolumeSource) -> bool {
    projected.sources.iter().flatten().any(|s| s.service_account_token.is_some())
}

fn insert(files: &mut Payload, path: String, file: File) -> Result<(), String> {
    if files.contains_key(&path) {
        return Err(format!("conflicting duplicate paths: more than one file at {path:?}"));
    }
    files.insert(path, file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath { key: key.into(), path: path.into(), mode }
    }

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())])
    }

    #[test]
    fn all_keys_or_the_items() {
        let all = key_files(Source::ConfigMap, &data(), None, false, 0o640).unwrap();
        assert_eq!(all["a"], File { data: b"1".to_vec(), mode: 0o640 });
        assert_eq!(all.len(), 2);
        let items = [item("a", "dir/first", Some(0o400)), item("b", "second", None)];
        let some = key_files(Source::Secret, &data(), Some(&items), false, 0o644).unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), ["dir/first", "second"]);
        assert_eq!(some["dir/first"].mode, 0o400);
        assert_eq!(some["second"].mode, 0o644);
    }

    #[test]
    fn a_missing_item_key_is_an_error_unless_optional() {
        let items = [item("a", "a", None), item("nope", "nope", None)];
        let error = key_files(Source::ConfigMap, &data(), Some(&items), false, 0o644).unwrap_err();
        assert_eq!(error, "configmap references non-existent config key: nope");
        let error = key_files(Source::Secret, &data(), Some(&items), false, 0o644).unwrap_err();
        assert_eq!(error, "secret references non-existent secret key: nope");
        let files = key_files(Source::ConfigMap, &data(), Some(&items), true, 0o644).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a"]);
        let twice = [item("a", "x", None), item("b", "x", None)];
        assert!(key_files(Source::ConfigMap, &data(), Some(&twice), false, 0o644).is_err());
    }

    #[test]
    fn downward_fields_and_resources() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "front".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([
                            ("cpu".into(), Quantity("1500m".into())),
                            ("memory".into(), Quantity("64Mi".into())),
                        ])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let field = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector { field_path: field.into(), ..Default::default() }),
            ..Default::default()
        };
        let resource = |path: &str, resource: &str, divisor: Option<&str>| DownwardAPIVolumeFile {
            path: path.into(),
            mode: Some(0o600),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("main".into()),
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            ..Default::default()
        };
        let items = [
            field("namespace", "metadata.namespace"),
            field("labels", "metadata.labels"),
            field("tier", "metadata.labels['tier']"),
            resource("cpu", "limits.cpu", None),
            resource("cpu_m", "limits.cpu", Some("1m")),
            resource("mem_mi", "limits.memory", Some("1Mi")),
            resource("mem_request", "requests.memory", None),
        ];
        let files = downward(&pod, &items, 0o644).unwrap();
        let text = |path: &str| String::from_utf8(files[path].data.clone()).unwrap();
        assert_eq!(text("namespace"), "shop");
        assert_eq!(text("labels"), "app=\"web\"\ntier=\"front\"\n");
        assert_eq!(text("tier"), "front");
        assert_eq!(text("cpu"), "2");
        assert_eq!(text("cpu_m"), "1500");
        assert_eq!(text("mem_mi"), "64");
        assert_eq!(text("mem_request"), "");
        assert_eq!(files["namespace"].mode, 0o644);
        assert_eq!(files["cpu"].mode, 0o600);
        let error = downward(&pod, &[field("x", "spec.nodeName")], 0o644).unwrap_err();
        assert_eq!(error, "unsupported fieldPath \"spec.nodeName\"");
    }
}
