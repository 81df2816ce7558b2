//! The API server through kube-rs, as Rust controllers will use it: typed CRUD, every patch type, optimistic
//! concurrency, pagination, and kube-runtime's watcher in both its list-then-watch and streaming-list modes.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config};
use testkit::Server;

async fn client(server: &Server) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
        "data": {"key": "value"},
    }))
    .unwrap()
}

fn start() -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Server::start(env!("CARGO_BIN_EXE_k8rs").as_ref(), &[])
}

#[tokio::test]
async fn typed_crud_patches_and_conflicts() {
    let server = start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let created = api.create(&PostParams::default(), &configmap("app", &[("tier", "web")])).await.unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let stale = created.clone();

    let merge = serde_json::json!({"data": {"merged": "yes"}});
    api.patch("app", &PatchParams::default(), &Patch::Merge(&merge)).await.unwrap();
    let strategic = serde_json::json!({"metadata": {"labels": {"added": "true"}}});
    api.patch("app", &PatchParams::default(), &Patch::Strategic(&strategic)).await.unwrap();
    let json: json_patch::Patch =
        serde_json::from_value(serde_json::json!([{"op": "add", "path": "/data/json", "value": "1"}])).unwrap();
    let patched = api.patch("app", &PatchParams::default(), &Patch::<()>::Json(json)).await.unwrap();
    let data = patched.data.unwrap();
    assert_eq!((data["merged"].as_str(), data["json"].as_str()), ("yes", "1"));
    assert_eq!(patched.metadata.labels.unwrap()["added"], "true");

    match api.replace("app", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => assert_eq!((status.code, status.reason.as_str()), (409, "Conflict")),
        other => panic!("a stale replace gave {other:?}"),
    }
    match api.get("missing").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("{other:?}"),
    }
    let selected = api.list(&ListParams::default().labels("tier=web,added")).await.unwrap();
    assert_eq!(selected.items.len(), 1);
    api.delete("app", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("app").await.unwrap().is_none());
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let server = start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    for n in 0..7 {
        api.create(&PostParams::default(), &configmap(&format!("page-{n}"), &[])).await.unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    // Every namespace also holds the root CA ConfigMap (its publisher may not have made it yet).
    names.retain(|n| n != "kube-root-ca.crt");
    assert_eq!(names, (0..7).map(|n| format!("page-{n}")).collect::<Vec<_>>());
}

/// kube-runtime's watcher sees an object created after it started, in both list modes.
#[tokio::test]
async fn the_runtime_watcher_follows_changes() {
    let server = start();
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for (mode, config) in
        [("list-watch", watcher::Config::default()), ("streaming", watcher::Config::default().streaming_lists())]
    {
        let name = format!("watched-{mode}");
        let stream = watcher(api.clone(), config.timeout(30)).boxed();
        let creator = {
            let (api, name) = (api.clone(), name.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                api.create(&PostParams::default(), &configmap(&name, &[])).await.unwrap();
            })
        };
        let mut stream = stream;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut seen = false;
        while !seen {
            let event = tokio::time::timeout_at(deadline, stream.try_next())
                .await
                .unwrap_or_else(|_| panic!("{mode}: the watcher never saw {name}"))
                .unwrap_or_else(|e| panic!("{mode}: watcher error {e}"))
                .expect("the watcher ended");
            if let watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) = event {
                seen = cm.metadata.name.as_deref() == Some(name.as_str());
            }
        }
        creator.await.unwrap();
    }
}

#[tokio::test]
async fn deployments_scale_through_the_scale_subresource() {
    let server = start();
    let api: Api<Deployment> = Api::namespaced(client(&server).await, "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &deployment).await.unwrap();
    let patch = serde_json::json!({"spec": {"replicas": 4}});
    let scale = api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(api.get("web").await.unwrap().spec.unwrap().replicas, Some(4));
    assert_eq!(api.get_scale("web").await.unwrap().status.unwrap().selector.as_deref(), Some("app=web"));
}

#[tokio::test]
async fn generated_names_that_are_taken_are_generated_again() {
    // Five characters from 27 give 14.3 million names: 20,000 creates draw the same one about 14 times, and each
    // such create must get a fresh name rather than a 409 (upstream retries generateName conflicts since 1.32).
    const CREATES: usize = 20_000;
    const TASKS: usize = 16;
    let server = start();
    let api: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let generated =
        serde_json::from_value::<ConfigMap>(serde_json::json!({"metadata": {"generateName": "gen-"}})).unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (api, generated) = (api.clone(), generated.clone());
            tokio::spawn(async move {
                let mut names = Vec::new();
                for _ in 0..CREATES / TASKS {
                    let created = api.create(&PostParams::default(), &generated).await.expect("a generated create");
                    names.push(created.metadata.name.unwrap());
                }
                names
            })
        })
        .collect();
    let mut names = std::collections::HashSet::new();
    for task in tasks {
        for name in task.await.unwrap() {
            assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
            assert!(names.insert(name), "a name was answered twice");
        }
    }
    assert_eq!(names.len(), CREATES);
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        listed.items.iter().filter(|c| c.metadata.name.as_deref().unwrap().starts_with("gen-")).count(),
        CREATES
    );
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_whatever_the_answer_format() {
    let server = start();
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &configmap("taken", &[])).await.unwrap();
    let body = serde_json::to_vec(&configmap("taken", &[])).unwrap();
    for accept in ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"] {
        let request = hyper::Request::post("/api/v1/namespaces/default/configmaps")
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(body.clone())
            .unwrap();
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{accept}: {status:?}"),
            other => panic!("a second create of a taken name answering {accept} gave {other:?}"),
        }
    }
}
