use serde_json::json;

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/protobuf");

/// Bodies kubectl 1.33 sent (`NAME.pb`) and what kubectl 1.31 sent as JSON for the same command (`NAME.json`).
const CAPTURED: &[(&str, &str)] = &[
    ("configmap", "create configmap x --from-literal=a=1 --from-literal=b=two"),
    ("configmap-binary", "create configmap xb --from-file=bin.dat (binary data)"),
    ("namespace", "create namespace n"),
    ("secret", "create secret generic s --from-literal=k=v"),
    ("secret-docker-registry", "create secret docker-registry dr --docker-server=r.io …"),
    ("deployment", "create deployment d --image=nginx --replicas=2"),
    ("deployment-zero-replicas", "create deployment d0 --image=nginx --replicas=0"),
    ("service", "create service clusterip svc --tcp=80:8080"),
    ("job", "create job j --image=busybox"),
    ("cronjob", "create cronjob cj --image=busybox --schedule='*/1 * * * *' -- echo hi"),
    ("auth-can-i", "auth can-i get pods"),
    ("auth-can-i-list", "auth can-i --list"),
    ("token", "create token default"),
    ("role", "create role r --verb=get,list --resource=pods,deployments.apps --resource-name=a"),
    ("rolebinding", "create rolebinding rb --role=r --user=bob --serviceaccount=default:default"),
    ("clusterrole", "create clusterrole cr --verb=get --non-resource-url=/healthz"),
    ("quota", "create quota q --hard=cpu=1,memory=1G,pods=2"),
    ("pdb", "create pdb pdb --selector=app=p --min-available=50%"),
    ("priorityclass", "create priorityclass pc --value=1000 --description=hi --preemption-policy=Never"),
    ("ingress", "create ingress ing --rule=foo.com/bar=svc:80,tls=sec --class=nginx"),
    ("serviceaccount", "create serviceaccount sa"),
    // kubectl 1.31 creates an autoscaling/v1 object here; the JSON is the v2 object written out from the Go types.
    ("hpa-autoscale", "autoscale deployment d --min=1 --max=3 --cpu-percent=50"),
    ("clusterrolebinding", "create clusterrolebinding crb --clusterrole=cr --group=g1 --user=u1"),
    ("service-nodeport", "create service nodeport np --tcp=8080:80 --node-port=30080"),
    ("service-externalname", "create service externalname en --external-name=example.com"),
    ("service-loadbalancer", "create service loadbalancer lb --tcp=443:8443"),
    ("secret-tls", "create secret tls tls --cert=c.pem --key=k.pem"),
    ("deployment-two-containers", "create deployment dp --image=nginx --image=redis --port=8080"),
    ("configmap-append-hash", "create configmap env --from-literal=zz=1 --from-literal=aa=2 --append-hash"),
    ("job-from-cronjob", "create job j2 --from=cronjob/cj (a cronjob read back with server defaults)"),
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn protobuf_bodies_of_kubectl_decode_to_the_json_kubectl_sent_before() {
    for (name, command) in CAPTURED {
        let body = fixture(&format!("{name}.pb"));
        let expected: Value = serde_json::from_slice(&fixture(&format!("{name}.json"))).unwrap();
        let decoded = decode(&body).unwrap_or_else(|e| panic!("{name} ({command}): {e}"));
        assert_eq!(
            decoded,
            expected,
            "kubectl {command}:\n decoded  {}\n expected {}",
            serde_json::to_string(&decoded).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
    }
}

// --- a small protobuf encoder for hand-made bodies ---

#[derive(Clone, Default)]
struct Pb(Vec<u8>);

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Pb {
    fn new() -> Pb {
        Pb::default()
    }

    fn varint(mut self, number: u32, v: u64) -> Pb {
        put_varint(&mut self.0, u64::from(number) << 3);
        put_varint(&mut self.0, v);
        self
    }

    fn fixed64(mut self, number: u32, v: u64) -> Pb {
        put_varint(&mut self.0, u64::from(number) << 3 | 1);
        self.0.extend(v.to_le_bytes());
        self
    }

    fn bytes(mut self, number: u32, b: &[u8]) -> Pb {
        put_varint(&mut self.0, u64::from(number) << 3 | 2);
        put_varint(&mut self.0, b.len() as u64);
        self.0.extend(b);
        self
    }

    fn string(self, number: u32, s: &str) -> Pb {
        self.bytes(number, s.as_bytes())
    }

    fn message(self, number: u32, m: Pb) -> Pb {
        self.bytes(number, &m.0)
    }

    /// A map entry {1 key, 2 value}.
    fn entry(self, number: u32, key: &str, value: Pb) -> Pb {
        self.message(number, Pb::new().string(1, key).0.iter().copied().chain(value.0).collect::<Vec<_>>().into())
    }
}

impl From<Vec<u8>> for Pb {
    fn from(bytes: Vec<u8>) -> Pb {
        Pb(bytes)
    }
}

fn body(api_version: &str, kind: &str, raw: Pb) -> Vec<u8> {
    let type_meta = Pb::new().string(1, api_version).string(2, kind);
    let envelope = Pb::new().message(1, type_meta).message(2, raw).string(3, "").string(4, "");
    [&MAGIC[..], &envelope.0].concat()
}

fn decoded(api_version: &str, kind: &str, raw: Pb) -> Value {
    decode(&body(api_version, kind, raw)).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// ObjectMeta with only a name, as Go writes it (every non-pointer field, zero or not).
fn meta(name: &str) -> Pb {
    Pb::new()
        .string(1, name)
        .string(2, "")
        .string(3, "")
        .string(4, "")
        .string(5, "")
        .string(6, "")
        .varint(7, 0)
        .message(8, Pb::new())
}

fn timestamp(seconds: i64, nanos: i32) -> Pb {
    Pb::new().varint(1, seconds as u64).varint(2, nanos as i64 as u64)
}

#[test]
fn protobuf_times_are_rfc3339_in_seconds_and_microtimes_in_microseconds() {
    // metav1.Time: seconds only, `Z`; the nanoseconds are dropped.
    let lease = Pb::new()
        .message(1, meta("l").message(9, timestamp(1_704_164_645, 999_999_999)))
        .message(2, Pb::new().message(3, timestamp(1_704_164_645, 123_456_789)).message(4, timestamp(0, 0)));
    let lease = decoded("coordination.k8s.io/v1", "Lease", lease);
    assert_eq!(lease["metadata"]["deletionTimestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(lease["metadata"]["creationTimestamp"], Value::Null);
    // metav1.MicroTime: six fraction digits, even when they are zero.
    assert_eq!(lease["spec"]["acquireTime"], "2024-01-02T03:04:05.123456Z");
    assert_eq!(lease["spec"]["renewTime"], "1970-01-01T00:00:00.000000Z");

    assert_eq!(format_time(-1, 0, false), "1969-12-31T23:59:59Z");
    assert_eq!(format_time(951_782_400, 0, false), "2000-02-29T00:00:00Z");
    assert_eq!(format_time(253_402_300_799, 0, false), "9999-12-31T23:59:59Z");
    assert_eq!(format_time(-62_135_596_800, 0, false), Value::Null, "Go's zero time");
    assert_eq!(format_time(0, -1000, true), "1969-12-31T23:59:59.999999Z");
}

#[test]
fn protobuf_durations_print_as_go_does() {
    for (nanoseconds, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (999_999_999, "999.999999ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ] {
        assert_eq!(go_duration(nanoseconds), text);
    }
}

#[test]
fn protobuf_special_types_take_their_json_forms() {
    // IntOrString: type 0 is the number, type 1 the string.
    let port = |target: Pb| Pb::new().string(1, "").string(2, "TCP").varint(3, 80).message(4, target).varint(5, 0);
    let service = Pb::new().message(1, meta("s")).message(
        2,
        Pb::new()
            .message(1, port(Pb::new().varint(1, 1).varint(2, 0).string(3, "http")))
            .message(1, port(Pb::new().varint(1, 0).varint(2, 8080).string(3, ""))),
    );
    let service = decoded("v1", "Service", service);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(service["spec"]["ports"][1]["targetPort"], 8080);
    assert_eq!(service["spec"]["ports"][0].get("nodePort"), None, "a zero non-pointer omitempty field is dropped");

    // Quantity: the string; a map value without one is the zero quantity.
    let quota = Pb::new().message(1, meta("q")).message(
        2,
        Pb::new().entry(1, "cpu", Pb::new().message(2, Pb::new().string(1, "1500m"))).entry(1, "pods", Pb::new()),
    );
    assert_eq!(decoded("v1", "ResourceQuota", quota)["spec"]["hard"], json!({"cpu": "1500m", "pods": "0"}));

    // []byte: base64; strings keep valid UTF-8 and replace each invalid byte.
    let secret = Pb::new()
        .message(1, meta("s"))
        .entry(2, "bin", Pb::new().bytes(2, &[0, 0xff, 0xfe, b'a']))
        .entry(2, "empty", Pb::new().bytes(2, b""))
        .string(3, "Opaque")
        .entry(4, "text", Pb::new().bytes(2, b"caf\xc3\xa9 \xf0\x9f\x98"));
    let secret = decoded("v1", "Secret", secret);
    assert_eq!(secret["data"], json!({"bin": "AP/+YQ==", "empty": ""}));
    assert_eq!(secret["stringData"]["text"], "café \u{fffd}\u{fffd}\u{fffd}");

    // RawExtension: embedded JSON, or an embedded protobuf object.
    let embedded = body("v1", "ConfigMap", Pb::new().message(1, meta("inner")).entry(2, "k", Pb::new().string(2, "v")));
    for (raw, data) in [
        (br#"{"spec":{"x":1}}"#.to_vec(), json!({"spec": {"x": 1}})),
        (
            embedded,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inner", "creationTimestamp": null}, "data": {"k": "v"}}),
        ),
    ] {
        let revision = Pb::new().message(1, meta("r")).message(2, Pb::new().bytes(1, &raw)).varint(3, 2);
        let revision = decoded("apps/v1", "ControllerRevision", revision);
        assert_eq!(revision["data"], data);
        assert_eq!(revision["revision"], 2);
    }
    let revision = decoded("apps/v1", "ControllerRevision", Pb::new().message(1, meta("r")).varint(3, 0));
    assert_eq!(revision["data"], Value::Null, "a RawExtension without bytes is null");
    assert_eq!(revision["revision"], 0, "not omitempty: the zero is kept");

    // FieldsV1: embedded JSON.
    let managed = Pb::new()
        .string(1, "kubectl")
        .string(2, "Update")
        .string(3, "v1")
        .message(4, timestamp(1_704_164_645, 0))
        .string(6, "FieldsV1")
        .message(7, Pb::new().bytes(1, br#"{"f:data":{".":{}}}"#));
    let config_map = decoded("v1", "ConfigMap", Pb::new().message(1, meta("c").message(17, managed)));
    assert_eq!(
        config_map["metadata"]["managedFields"],
        json!([{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}}}}])
    );
}

#[test]
fn protobuf_pointers_keep_zeros_and_values_drop_them() {
    // replicas is *int32 (0 stays), minReadySeconds int32 omitempty (0 goes), paused bool omitempty.
    let spec = Pb::new().varint(1, 0).varint(5, 0).varint(7, 0).message(3, Pb::new().message(1, meta("")));
    let deployment = decoded("apps/v1", "Deployment", Pb::new().message(1, meta("d")).message(2, spec));
    assert_eq!(deployment["spec"]["replicas"], 0);
    assert_eq!(deployment["spec"].get("minReadySeconds"), None);
    assert_eq!(deployment["spec"].get("paused"), None);
    // A pointer without omitempty that is absent is null; a struct that is absent is its zero value.
    assert_eq!(deployment["spec"]["selector"], Value::Null);
    assert_eq!(deployment["spec"]["strategy"], json!({}));
    assert_eq!(deployment["status"], json!({}));

    // Nothing at all: what Go's json.Marshal(appsv1.Deployment{}) gives.
    assert_eq!(
        decoded("apps/v1", "Deployment", Pb::new()),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"creationTimestamp": null},
               "spec": {"selector": null, "strategy": {}, "template": {"metadata": {"creationTimestamp": null},
                        "spec": {"containers": null}}},
               "status": {}})
    );
}

#[test]
fn protobuf_inline_structs_repeated_scalars_and_extra_values() {
    // Volume inlines its VolumeSource; the last occurrence of a scalar wins; messages merge.
    let volume = Pb::new()
        .string(1, "cfg")
        .message(2, Pb::new().message(19, Pb::new().message(1, Pb::new().string(1, "settings"))));
    let spec = Pb::new().message(1, volume).message(2, Pb::new().string(1, "c").string(2, "nginx"));
    let pod = Pb::new()
        .message(1, meta("p"))
        .message(1, Pb::new().string(1, "p2").entry(11, "app", Pb::new().string(2, "web")))
        .message(2, spec);
    let pod = decoded("v1", "Pod", pod);
    assert_eq!(pod["metadata"]["name"], "p2");
    assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(pod["spec"]["volumes"], json!([{"name": "cfg", "configMap": {"name": "settings"}}]));
    assert_eq!(pod["spec"]["containers"][0]["resources"], json!({}));

    // Repeated int32, unpacked and packed (PodFailurePolicyOnExitCodesRequirement.values).
    let requirement =
        |values: Pb| Pb::new().string(2, "In").message(3, Pb::new()).0.into_iter().chain(values.0).collect::<Vec<_>>();
    let packed = Pb::new().bytes(3, &[1, 2, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    for values in [Pb::new().varint(3, 1).varint(3, 2).varint(3, u64::MAX), packed] {
        let rule = Pb::new().string(1, "FailJob").message(2, Pb::from(requirement(values)));
        let job = Pb::new().message(1, meta("j")).message(2, Pb::new().message(11, Pb::new().message(1, rule)));
        let job = decoded("batch/v1", "Job", job);
        let values = &job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"];
        assert_eq!(values, &json!([1, 2, -1]));
    }

    // ExtraValue: a map of string lists.
    let spec = Pb::new()
        .message(1, Pb::new().string(2, "get").string(3, "").string(5, "pods"))
        .string(3, "alice")
        .entry(5, "scopes", Pb::new().message(2, Pb::new().string(1, "a").string(1, "b")))
        .entry(5, "none", Pb::new().message(2, Pb::new()));
    let review =
        decoded("authorization.k8s.io/v1", "SubjectAccessReview", Pb::new().message(1, meta("")).message(2, spec));
    assert_eq!(review["spec"]["extra"], json!({"scopes": ["a", "b"], "none": []}));
    assert_eq!(review["spec"]["user"], "alice");
    assert_eq!(review["spec"]["resourceAttributes"], json!({"verb": "get", "resource": "pods"}));
}

#[test]
fn protobuf_custom_resource_definition_schemas() {
    const PROPS: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
    let number = |json: &str| Schema::get().message(PROPS).unwrap().field_named(json).unwrap().number;
    assert_eq!((number("$ref"), number("x-kubernetes-preserve-unknown-fields"), number("maximum")), (3, 38, 9));

    let string = Pb::new().string(5, "string");
    let props = Pb::new()
        .string(5, "object")
        .fixed64(9, 5f64.to_bits())
        .fixed64(11, 0.5f64.to_bits())
        .message(8, Pb::new().bytes(1, br#"{"a":[1]}"#))
        .message(20, Pb::new().bytes(1, b"\"x\""))
        .entry(29, "name", Pb::new().message(2, string.clone()))
        .entry(
            29,
            "list",
            Pb::new().message(2, Pb::new().string(5, "array").message(24, Pb::new().message(1, string.clone()))),
        )
        .entry(
            29,
            "tuple",
            Pb::new().message(
                2,
                Pb::new()
                    .string(5, "array")
                    .message(24, Pb::new().message(2, string.clone()).message(2, string.clone())),
            ),
        )
        .entry(29, "open", Pb::new().message(2, Pb::new().string(5, "object").message(30, Pb::new().varint(1, 0))))
        .entry(
            29,
            "typed",
            Pb::new().message(
                2,
                Pb::new().string(5, "object").message(30, Pb::new().varint(1, 1).message(2, string.clone())),
            ),
        )
        .entry(32, "name", Pb::new().message(2, Pb::new().string(2, "list")))
        .varint(38, 1)
        .message(44, Pb::new().string(1, "self.x > 0").varint(6, 0));
    let version = Pb::new()
        .string(1, "v1")
        .varint(2, 1)
        .varint(3, 1)
        .message(4, Pb::new().message(1, props))
        .varint(7, 0)
        .message(9, Pb::new().string(1, ".spec.name"));
    let names = Pb::new().string(1, "widgets").string(2, "widget").string(4, "Widget").string(5, "WidgetList");
    let spec =
        Pb::new().string(1, "example.com").message(3, names).string(4, "Namespaced").message(7, version).varint(10, 0);
    let crd = decoded(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        Pb::new().message(1, meta("widgets.example.com")).message(2, spec),
    );
    assert_eq!(
        crd["spec"],
        json!({
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "maximum": 5, "minimum": 0.5, "default": {"a": [1]}, "enum": ["x"],
                    "properties": {
                        "name": {"type": "string"},
                        "list": {"type": "array", "items": {"type": "string"}},
                        "tuple": {"type": "array", "items": [{"type": "string"}, {"type": "string"}]},
                        "open": {"type": "object", "additionalProperties": false},
                        "typed": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                    "dependencies": {"name": ["list"]},
                    "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-validations": [{"rule": "self.x > 0", "optionalOldSelf": false}]
                }},
                "selectableFields": [{"jsonPath": ".spec.name"}]
            }]
        })
    );
    assert_eq!(
        crd["status"],
        json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": null})
    );
}

#[test]
fn protobuf_delete_options_decode_in_any_group_version() {
    let options =
        Pb::new().varint(1, 0).string(4, "Background").string(5, "All").message(2, Pb::new().string(1, "uid-1"));
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        assert_eq!(
            decoded(api_version, "DeleteOptions", options.clone()),
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                   "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Background", "dryRun": ["All"]})
        );
    }
}

#[test]
fn protobuf_unknown_fields_are_skipped() {
    let raw = Pb::new().message(1, meta("x")).varint(999, 7).string(1000, "?").fixed64(1001, 1);
    let mut raw = raw.0;
    raw.extend([0xfb, 0x3e]); // field 1007: start group
    raw.extend([0x08, 0x01, 0x0b, 0x0c]); // field 1 = 1, an empty nested group 1
    raw.extend([0xfc, 0x3e]); // field 1007: end group
    raw.extend([0xad, 0x03, 1, 2, 3, 4]); // field 53 as fixed32
    let config_map = decoded("v1", "ConfigMap", raw.into());
    assert_eq!(
        config_map,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "creationTimestamp": null}})
    );
}

// --- malformed input ---

#[test]
fn protobuf_errors_name_the_problem() {
    assert_eq!(decode(b""), Err(DecodeError::MissingMagic));
    assert_eq!(decode(b"k8s"), Err(DecodeError::MissingMagic));
    assert_eq!(decode(br#"{"kind":"ConfigMap"}"#), Err(DecodeError::MissingMagic));
    assert!(DecodeError::MissingMagic.to_string().contains("6b 38 73 00"));

    let error = decode(&body("v1", "Frobnicator", Pb::new())).unwrap_err();
    assert_eq!(error, DecodeError::UnknownKind { api_version: "v1".into(), kind: "Frobnicator".into() });
    assert_eq!(error.to_string(), r#"no protobuf schema for kind "Frobnicator" in apiVersion "v1""#);
    let error = decode(&body("apps/v1", "ConfigMap", Pb::new())).unwrap_err();
    assert!(matches!(error, DecodeError::UnknownKind { .. }), "{error}");
    let no_kind = [&MAGIC[..], &Pb::new().message(2, Pb::new()).0].concat();
    assert_eq!(decode(&no_kind).unwrap_err().to_string(), r#"the protobuf envelope names no kind (apiVersion "")"#);

    let error = decode(&body("v1", "ConfigMap", Pb::new().varint(1, 5))).unwrap_err();
    assert_eq!(error.to_string(), "malformed protobuf body: field 1 of ConfigMap has the wrong wire type (varint)");
    let error = decode(&body(
        "v1",
        "ConfigMap",
        Pb(vec![0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ))
    .unwrap_err();
    assert_eq!(error, DecodeError::Malformed("varint overflows 64 bits".into()));
    let error = decode(&body("v1", "ConfigMap", Pb(vec![0x12, 0x05, 0x0a]))).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");
    let error = decode(&body("v1", "ConfigMap", Pb(vec![0x00]))).unwrap_err();
    assert_eq!(error, DecodeError::Malformed("invalid field number 0".into()));
    let error =
        decode(&body("apps/v1", "ControllerRevision", Pb::new().message(2, Pb::new().bytes(1, b"{nope")))).unwrap_err();
    assert!(error.to_string().starts_with("malformed protobuf body: RawExtension does not hold JSON"), "{error}");
    let error = decode(&body(
        "v1",
        "Service",
        Pb::new().message(2, Pb::new().message(1, Pb::new().message(4, Pb::new().varint(1, 7)))),
    ))
    .unwrap_err();
    assert_eq!(error, DecodeError::Malformed("IntOrString of type 7".into()));

    let gzip =
        [&MAGIC[..], &Pb::new().message(1, Pb::new().string(1, "v1").string(2, "ConfigMap")).string(3, "gzip").0]
            .concat();
    assert_eq!(decode(&gzip), Err(DecodeError::Unsupported("content encoding \"gzip\"".into())));
}

#[test]
fn protobuf_truncated_and_corrupted_bodies_fail_without_panicking() {
    for (name, _) in CAPTURED {
        let body = fixture(&format!("{name}.pb"));
        let full = decode(&body).unwrap();
        // The envelope is typeMeta (1), raw (2), then the empty contentEncoding (3) and contentType (4).
        let (type_meta_end, raw_end) = (6 + body[5] as usize, body.len() - 4);
        assert_eq!(&body[raw_end..], [0x1a, 0, 0x22, 0]);
        for len in 0..body.len() {
            match decode(&body[..len]) {
                // Cut between fields: without raw, the object is empty; after it, the result is whole.
                Ok(value) if len == type_meta_end => {
                    let (api_version, kind) = (full["apiVersion"].as_str().unwrap(), full["kind"].as_str().unwrap());
                    assert_eq!(value, decoded(api_version, kind, Pb::new()), "{name}");
                }
                Ok(value) if len >= raw_end => assert_eq!(value, full, "{name} cut at {len}"),
                Ok(value) => panic!("{name} cut at {len} decoded to {value}"),
                Err(_) => assert!(len < raw_end || (len - raw_end) % 2 == 1, "{name} cut at {len} failed"),
            }
        }
        // Deterministic corruption of every byte; any answer is fine as long as there is no panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for at in 0..body.len() {
            for _ in 0..6 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut corrupted = body.clone();
                corrupted[at] = seed as u8;
                let _ = decode(&corrupted);
            }
        }
    }
}

#[test]
fn protobuf_deep_nesting_is_refused() {
    // JSONSchemaProps.not (28) nested 10 000 deep.
    let mut props = Vec::new();
    for _ in 0..10_000 {
        props = Pb::new().bytes(28, &props).0;
    }
    let crd_spec = Pb::new().message(7, Pb::new().string(1, "v1").message(4, Pb::new().bytes(1, &props)));
    let error = decode(&body("apiextensions.k8s.io/v1", "CustomResourceDefinition", Pb::new().message(2, crd_spec)))
        .unwrap_err();
    assert_eq!(error, DecodeError::Malformed(format!("messages nested more than {MAX_DEPTH} deep")));
}

// --- the schema table ---

#[test]
fn protobuf_schema_covers_every_registry_kind() {
    let schema = Schema::get();
    for resource in crate::registry::RESOURCES {
        let api_version = resource.group_version();
        assert!(schema.message_for_kind(&api_version, resource.kind).is_some(), "{api_version} {}", resource.kind);
        for sub in resource.subresources {
            let api_version =
                if sub.group.is_empty() { sub.version.to_owned() } else { format!("{}/{}", sub.group, sub.version) };
            assert!(schema.message_for_kind(&api_version, sub.kind).is_some(), "{api_version} {}", sub.kind);
        }
    }
    assert!(schema.kinds().count() > 70);
}

/// The OpenAPI definitions of every kind the table decodes, from k8s-openapi.
fn openapi_definitions() -> serde_json::Map<String, Value> {
    // The shared list of kinds, and DeleteOptions, which DELETE bodies carry.
    let (_, mut definitions) = crate::k8s_kinds::openapi_kinds();
    let mut generator = k8s_openapi::schemars::SchemaGenerator::default();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    definitions.extend(generator.definitions().clone());
    definitions
}

/// The JSON members of a message, with those of inlined structs.
fn json_fields<'a>(schema: &'a Schema, message: &'a Message, out: &mut Vec<(String, &'a Field)>) {
    for field in &message.fields {
        match (&field.json, field.ty) {
            (Some(name), _) => out.push((name.clone(), field)),
            (None, Type::Message(m)) => json_fields(schema, &schema.messages[m], out),
            (None, Type::Scalar(_)) => unreachable!("only structs inline"),
        }
    }
}

/// Whether a value of table type `ty` fits the OpenAPI property schema `property`.
fn fits(schema: &Schema, ty: Type, property: &Value) -> Result<(), String> {
    let openapi_type = property["type"].as_str().unwrap_or_default();
    let expect = |wanted: &str| if openapi_type == wanted { Ok(()) } else { Err(format!("{ty:?} is not {property}")) };
    match ty {
        Type::Scalar(Scalar::Bool) => expect("boolean"),
        Type::Scalar(Scalar::Int32 | Scalar::Int64 | Scalar::Uint32 | Scalar::Uint64) => expect("integer"),
        Type::Scalar(Scalar::Double) => expect("number"),
        Type::Scalar(Scalar::String | Scalar::Bytes) => expect("string"),
        Type::Message(m) => {
            let message = &schema.messages[m];
            if message.form == Form::Items {
                expect("array")?;
                let Type::Scalar(item) = message.fields[0].ty else { return Err("items of messages".into()) };
                return fits(schema, Type::Scalar(item), &property["items"]);
            }
            let reference = property["$ref"].as_str().unwrap_or_default();
            if reference.strip_prefix("#/$defs/") == Some(message.name.as_str()) {
                Ok(())
            } else {
                Err(format!("{} is not {property}", message.name))
            }
        }
    }
}

#[test]
fn protobuf_schema_fields_match_k8s_openapi() {
    let definitions = openapi_definitions();
    let schema = Schema::get();
    let (mut checked, mut problems) = (0, Vec::new());
    for message in schema.messages.iter().filter(|m| m.form == Form::Object) {
        let Some(definition) = definitions.get(&message.name) else {
            continue;
        };
        checked += 1;
        let empty = serde_json::Map::new();
        let properties = definition["properties"].as_object().unwrap_or(&empty);
        let mut fields = Vec::new();
        json_fields(schema, message, &mut fields);
        for (name, field) in &fields {
            let Some(property) = properties.get(name) else {
                problems.push(format!("{}.{name}: not in OpenAPI", message.name));
                continue;
            };
            let fit = match field.shape {
                Shape::Value | Shape::Pointer => fits(schema, field.ty, property),
                Shape::Slice if property["type"] == "array" => fits(schema, field.ty, &property["items"]),
                Shape::Map if property["type"] == "object" => fits(schema, field.ty, &property["additionalProperties"]),
                _ => Err(format!("{:?} is not {property}", field.shape)),
            };
            if let Err(e) = fit {
                problems.push(format!("{}.{name}: {e}", message.name));
            }
        }
        for name in properties.keys().filter(|n| !["apiVersion", "kind"].contains(&n.as_str())) {
            if !fields.iter().any(|(f, _)| f == name) {
                problems.push(format!("{}.{name}: not in the protobuf table", message.name));
            }
        }
    }
    assert!(checked > 300, "only {checked} messages have an OpenAPI definition");
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}
