//! The pod status the kubelet reports, computed from what its worker knows, in upstream's shapes: phase,
//! conditions, IPs, start time and a status per (init) container with state, last state and restart count.

use std::collections::BTreeMap;
use std::time::SystemTime;

use apimachinery::time::rfc3339;
use k8s_openapi::api::core::v1::{Container, Pod};
use runtime::container::ContainerState;
use serde_json::{json, Value};

use crate::pods::{restart_policy, ContainerRecord};

pub struct Inputs<'a> {
    pub records: &'a BTreeMap<String, ContainerRecord>,
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
    pub start_time: Option<SystemTime>,
    pub sandbox_ready: bool,
    pub init_done: bool,
}

/// `terminated` for a finished attempt, as `lastState` shows it.
pub fn terminated(record: &ContainerRecord) -> Option<Value> {
    let Some(ContainerState::Exited { exit_code, oom_killed, started_at, finished_at }) = &record.state else {
        return None;
    };
    let reason = if record.start_error.is_some() {
        "StartError"
    } else if *oom_killed {
        "OOMKilled"
    } else if *exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut value = json!({
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started_at.map(rfc3339).unwrap_or_else(|| "1970-01-01T00:00:00Z".into()),
        "finishedAt": rfc3339(*finished_at),
    });
    if let Some(message) = &record.start_error {
        value["message"] = json!(message);
    }
    if let Some(id) = &record.id {
        value["containerID"] = json!(format!("k8rs://{id}"));
    }
    Some(value)
}

fn container_status(container: &Container, record: Option<&ContainerRecord>, waiting_reason: &str) -> Value {
    let default = ContainerRecord::default();
    let record = record.unwrap_or(&default);
    let running = matches!(record.state, Some(ContainerState::Running { .. }));
    let (state, last_state) = match (&record.waiting, &record.state) {
        (Some((reason, message)), _) if !running => {
            let waiting = json!({"waiting": {"reason": reason, "message": message}});
            // In a crash loop the attempt that just ended is the last state.
            let last = if reason == "CrashLoopBackOff" { terminated(record) } else { record.last_terminated.clone() };
            (waiting, last)
        }
        (_, Some(ContainerState::Running { started_at, .. })) => {
            (json!({"running": {"startedAt": rfc3339(*started_at)}}), record.last_terminated.clone())
        }
        (_, Some(ContainerState::Exited { .. })) => {
            (json!({"terminated": terminated(record)}), record.last_terminated.clone())
        }
        _ => (json!({"waiting": {"reason": waiting_reason}}), record.last_terminated.clone()),
    };
    let mut status = json!({
        "name": container.name,
        "image": container.image.clone().unwrap_or_default(),
        "imageID": record.image_id.clone().unwrap_or_default(),
        "restartCount": record.restart_count,
        "started": running,
        "ready": running,
        "state": state,
        "lastState": last_state.map(|t| json!({"terminated": t})).unwrap_or_else(|| json!({})),
    });
    if let Some(id) = &record.id {
        status["containerID"] = json!(format!("k8rs://{id}"));
    }
    status
}

pub fn pod_status(pod: &Pod, inputs: &Inputs<'_>) -> Value {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let records = inputs.records;
    let policy = restart_policy(pod);
    let init_failed = policy == "Never"
        && spec.init_containers.iter().flatten().any(|c| {
            matches!(records.get(&c.name).and_then(|r| r.state.as_ref()), Some(ContainerState::Exited { exit_code, .. }) if *exit_code != 0)
        });
    let will_restart = |record: &ContainerRecord| match &record.state {
        Some(ContainerState::Exited { exit_code, .. }) => {
            policy == "Always" || (policy == "OnFailure" && *exit_code != 0)
        }
        _ => false,
    };
    let phase = if let Some(phase) = old.phase.as_deref().filter(|p| matches!(*p, "Succeeded" | "Failed")) {
        phase.to_string()
    } else if init_failed {
        "Failed".into()
    } else if !inputs.sandbox_ready || !inputs.init_done {
        "Pending".into()
    } else {
        let states: Vec<Option<&ContainerRecord>> = spec.containers.iter().map(|c| records.get(&c.name)).collect();
        let never_started = states
            .iter()
            .any(|r| r.is_none_or(|r| r.state.is_none() || matches!(r.state, Some(ContainerState::Created))));
        let active =
            states.iter().flatten().any(|r| matches!(r.state, Some(ContainerState::Running { .. })) || will_restart(r));
        if never_started {
            "Pending".into()
        } else if active {
            "Running".into()
        } else {
            let all_zero =
                states.iter().flatten().all(|r| matches!(r.state, Some(ContainerState::Exited { exit_code: 0, .. })));
            if all_zero { "Succeeded" } else { "Failed" }.into()
        }
    };

    let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
    let container_reason = if inputs.init_done || !has_init { "ContainerCreating" } else { "PodInitializing" };
    let container_statuses: Vec<Value> =
        spec.containers.iter().map(|c| container_status(c, records.get(&c.name), container_reason)).collect();
    let init_statuses: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let mut status = container_status(c, records.get(&c.name), "PodInitializing");
            // An init container that finished is not "ready"; upstream reports it ready once completed.
            let completed = matches!(
                records.get(&c.name).and_then(|r| r.state.as_ref()),
                Some(ContainerState::Exited { exit_code: 0, .. })
            );
            status["ready"] = json!(completed);
            status
        })
        .collect();

    let unready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| {
            !matches!(records.get(&c.name).and_then(|r| r.state.as_ref()), Some(ContainerState::Running { .. }))
        })
        .map(|c| c.name.as_str())
        .collect();
    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| {
            !matches!(
                records.get(&c.name).and_then(|r| r.state.as_ref()),
                Some(ContainerState::Exited { exit_code: 0, .. })
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    let now = rfc3339(SystemTime::now());
    let old_conditions: Vec<Value> =
        old.conditions.iter().flatten().filter_map(|c| serde_json::to_value(c).ok()).collect();
    let condition = |kind: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let transition = old_conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone());
        let mut value =
            json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
        if let Some(reason) = reason {
            value["reason"] = json!(reason);
        }
        if let Some(message) = message {
            value["message"] = json!(message);
        }
        value
    };
    let completed = phase == "Succeeded" || phase == "Failed";
    let ready_reason = if completed { "PodCompleted" } else { "ContainersNotReady" };
    let ready = unready.is_empty();
    let not_ready = |ok: bool| {
        if ok {
            (None, None)
        } else {
            (
                Some(ready_reason),
                (!completed).then(|| format!("containers with unready status: [{}]", unready.join(" "))),
            )
        }
    };
    let (ready_r, ready_m) = not_ready(ready);
    let initialized = inputs.init_done || incomplete.is_empty();
    let conditions = vec![
        condition("PodReadyToStartContainers", inputs.sandbox_ready && !completed, None, None),
        condition(
            "Initialized",
            initialized,
            (!initialized).then_some("ContainersNotInitialized"),
            (!initialized).then(|| format!("containers with incomplete status: [{}]", incomplete.join(" "))),
        ),
        condition("Ready", ready, ready_r, ready_m.clone()),
        condition("ContainersReady", ready, ready_r, ready_m),
        condition("PodScheduled", true, None, None),
    ];
    let start_time = old
        .start_time
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok())
        .unwrap_or_else(|| json!(inputs.start_time.map(rfc3339)));
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": inputs.host_ip,
        "hostIPs": [{"ip": inputs.host_ip}],
        "startTime": start_time,
        "containerStatuses": container_statuses,
    });
    if let Some(ip) = inputs.pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    if let Some(qos) = &old.qos_class {
        status["qosClass"] = json!(qos);
    }
    status
}
