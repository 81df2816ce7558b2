"""The official Python `kubernetes` client against a k8rs server, unchanged: typed CRUD and patches, selectors,
pagination, watch, delete_collection, Status errors, create_from_yaml and the DynamicClient (server-side apply).

Run by tests/python_client.rs with KUBECONFIG pointing at a fresh server. Prints `ok: <check>` for each check that
passed, `FAIL: <check>` with a traceback for one that failed (the others still run), and exits 1 if any failed.
A part of a check that meets a known k8rs gap prints `skip: <check>/<part>: <why> [<what was seen>]` instead.
"""
import base64
import datetime
import json
import sys
import tempfile
import threading
import time
import traceback

from kubernetes import client, config, dynamic, utils, watch
from kubernetes.client.rest import ApiException

NS = "py-e2e"
IMAGE = "registry.example/web:1"

# Parts of checks that found a known k8rs gap (see known_gap).
GAPS = []


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def known_gap(check, why, upstream):
    """Runs `upstream`, which asserts upstream's behaviour; while k8rs still has the gap `why` (the assertion
    fails) this prints a skip line instead of failing, and once k8rs is fixed the part simply passes."""
    try:
        upstream()
        print(f"ok: {check}", flush=True)
    except AssertionError as e:
        GAPS.append(check)
        print(f"skip: {check}: {why} [{e}]", flush=True)


def api_error(call, status, reason):
    """Runs `call`, which must raise ApiException `status`; returns the body parsed as a Status with `reason`."""
    try:
        call()
    except ApiException as e:
        expect(e.status == status, f"status {e.status}, wanted {status}: {e.body}")
        expect(e.headers.get("Content-Type", "").startswith("application/json"), f"content type {e.headers}")
        body = json.loads(e.body)
        expect(body.get("kind") == "Status" and body.get("apiVersion") == "v1", f"not a Status: {e.body}")
        expect(body.get("status") == "Failure", f"status field: {e.body}")
        expect(body.get("reason") == reason and body.get("code") == status, f"wanted {reason}/{status}: {e.body}")
        return body
    raise AssertionError(f"no ApiException, wanted {status} {reason}")


def meta(name, labels=None, **kwargs):
    return client.V1ObjectMeta(name=name, labels=labels, **kwargs)


def deployment_body(name, replicas=1):
    labels = {"app": name}
    container = client.V1Container(name="web", image=IMAGE, ports=[client.V1ContainerPort(container_port=80)])
    template = client.V1PodTemplateSpec(metadata=meta(None, labels), spec=client.V1PodSpec(containers=[container]))
    selector = client.V1LabelSelector(match_labels=labels)
    return client.V1Deployment(
        metadata=meta(name, labels),
        spec=client.V1DeploymentSpec(replicas=replicas, selector=selector, template=template),
    )


class Suite:
    def __init__(self):
        config.load_kube_config()  # from $KUBECONFIG, as any user's program would
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    def version(self):
        info = client.VersionApi(self.api).get_code()
        expect(info.major == "1" and info.minor, f"version {info}")
        expect(info.git_version.startswith("v1."), f"git_version {info.git_version}")

    def namespace(self):
        created = self.core.create_namespace(client.V1Namespace(metadata=meta(NS, {"suite": "python"})))
        expect(created.metadata.uid and created.metadata.resource_version, f"created {created.metadata}")
        expect(created.metadata.creation_timestamp is not None, "no creationTimestamp")
        read = self.core.read_namespace(NS)
        expect(read.status.phase == "Active", f"phase {read.status.phase}")
        patched = self.core.patch_namespace(NS, {"metadata": {"labels": {"patched": "yes"}}})
        expect(patched.metadata.labels.get("patched") == "yes", f"labels {patched.metadata.labels}")
        expect(patched.metadata.labels.get("suite") == "python", f"patch dropped a label {patched.metadata.labels}")
        patched.metadata.annotations = {"note": "replaced"}
        replaced = self.core.replace_namespace(NS, patched)
        expect(replaced.metadata.annotations == {"note": "replaced"}, f"annotations {replaced.metadata.annotations}")
        names = [n.metadata.name for n in self.core.list_namespace(label_selector="suite=python").items]
        expect(names == [NS], f"label selector: {names}")
        names = [n.metadata.name for n in self.core.list_namespace(field_selector="metadata.name=default").items]
        expect(names == ["default"], f"field selector: {names}")
        # A second namespace goes away: gone at once, or Terminating until its contents are deleted.
        self.core.create_namespace(client.V1Namespace(metadata=meta("py-e2e-gone")))
        self.core.delete_namespace("py-e2e-gone")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                phase = self.core.read_namespace("py-e2e-gone").status.phase
                expect(phase == "Terminating", f"deleted namespace is {phase}")
            except ApiException as e:
                expect(e.status == 404, f"read of a deleted namespace: {e.status}")
                return
            time.sleep(0.2)
        raise AssertionError("deleted namespace still there after 30 s")

    def configmap(self):
        body = client.V1ConfigMap(metadata=meta("cfg", {"app": "shop"}), data={"color": "blue", "size": "L"})
        created = self.core.create_namespaced_config_map(NS, body)
        expect(created.data == {"color": "blue", "size": "L"}, f"data {created.data}")
        read = self.core.read_namespaced_config_map("cfg", NS)
        expect(read.metadata.uid == created.metadata.uid, "uid changed")
        # A dict is sent as a strategic merge patch: keys merge, None deletes.
        patched = self.core.patch_namespaced_config_map("cfg", NS, {"data": {"color": "red", "size": None}})
        expect(patched.data == {"color": "red"}, f"strategic merge patch: {patched.data}")
        # A list is sent as a JSON patch.
        ops = [
            {"op": "add", "path": "/data/shape", "value": "round"},
            {"op": "test", "path": "/data/color", "value": "red"},
        ]
        patched = self.core.patch_namespaced_config_map("cfg", NS, ops)
        expect(patched.data == {"color": "red", "shape": "round"}, f"json patch: {patched.data}")
        expect(int(patched.metadata.resource_version) > int(created.metadata.resource_version), "resourceVersion")
        patched.data["size"] = "XL"
        replaced = self.core.replace_namespaced_config_map("cfg", NS, patched)
        expect(replaced.data["size"] == "XL", f"replace: {replaced.data}")
        # A failed JSON patch test is 422 Invalid or 409 Conflict upstream depending on version; it must be an error.
        try:
            self.core.patch_namespaced_config_map("cfg", NS, [{"op": "test", "path": "/data/color", "value": "green"}])
            raise AssertionError("a failing JSON patch test was applied")
        except ApiException as e:
            expect(400 <= e.status < 500 and json.loads(e.body)["kind"] == "Status", f"{e.status} {e.body}")
        # Optimistic concurrency: the stale object (old resourceVersion) is refused.
        status = api_error(lambda: self.core.replace_namespaced_config_map("cfg", NS, patched), 409, "Conflict")
        expect("the object has been modified" in status["message"], status["message"])
        status = api_error(lambda: self.core.create_namespaced_config_map(NS, body), 409, "AlreadyExists")
        expect(status["details"]["name"] == "cfg" and status["details"]["kind"] == "configmaps", f"{status}")
        status = api_error(lambda: self.core.read_namespaced_config_map("nope", NS), 404, "NotFound")
        expect(status["message"] == 'configmaps "nope" not found', status["message"])
        expect(status["details"] == {"name": "nope", "kind": "configmaps"}, f"details {status['details']}")
        # dryRun=All answers as a create would, and persists nothing.
        dry = self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("dry")), dry_run="All")
        expect(dry.metadata.name == "dry", f"dry run answered {dry.metadata}")
        api_error(lambda: self.core.read_namespaced_config_map("dry", NS), 404, "NotFound")
        deleted = self.core.delete_namespaced_config_map("cfg", NS)
        # The client takes a plain dict here: a Success Status naming the object, as upstream's.
        expect(deleted["kind"] == "Status" and deleted["status"] == "Success", f"delete returned {deleted}")
        expect(deleted["details"]["name"] == "cfg" and deleted["details"]["kind"] == "configmaps", f"{deleted}")
        expect(len(deleted["details"]["uid"]) == 36, f"{deleted}")
        api_error(lambda: self.core.read_namespaced_config_map("cfg", NS), 404, "NotFound")
        api_error(lambda: self.core.delete_namespaced_config_map("cfg", NS), 404, "NotFound")

    def secret(self):
        body = client.V1Secret(metadata=meta("creds"), string_data={"user": "admin"}, type="Opaque")
        created = self.core.create_namespaced_secret(NS, body)
        expect(created.type == "Opaque", f"type {created.type}")

        def folded():
            read = self.core.read_namespaced_secret("creds", NS)
            expect(read.data == {"user": base64.b64encode(b"admin").decode()}, f"data {read.data}")
            expect(read.string_data is None, f"stringData {read.string_data}")

        # stringData is merged into data (base64) on every write and never stored.
        folded()
        patched = self.core.patch_namespaced_secret("creds", NS, {"data": {"pass": base64.b64encode(b"pw").decode()}})
        expect(patched.data["pass"] == base64.b64encode(b"pw").decode(), f"patch {patched.data}")
        patched.data, patched.string_data = {"token": base64.b64encode(b"t").decode()}, None
        replaced = self.core.replace_namespaced_secret("creds", NS, patched)
        expect(list(replaced.data) == ["token"], f"replace {replaced.data}")
        # DeleteOptions travel in the DELETE's body.
        options = client.V1DeleteOptions(grace_period_seconds=0, propagation_policy="Background")
        self.core.delete_namespaced_secret("creds", NS, body=options)
        api_error(lambda: self.core.read_namespaced_secret("creds", NS), 404, "NotFound")

    def deployment(self):
        created = self.apps.create_namespaced_deployment(NS, deployment_body("web"))
        expect(created.spec.template.spec.containers[0].image == IMAGE, "image")
        # Server defaults the client relies on when it reads back.
        expect(created.spec.strategy.type == "RollingUpdate", f"strategy {created.spec.strategy}")
        expect(created.spec.revision_history_limit == 10, f"revisionHistoryLimit {created.spec.revision_history_limit}")
        # Strategic merge patch: containers merge by name, so only the image changes and the ports stay.
        patch = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}
        patched = self.apps.patch_namespaced_deployment("web", NS, patch)
        containers = patched.spec.template.spec.containers
        expect(patched.spec.replicas == 2, f"replicas {patched.spec.replicas}")
        expect(len(containers) == 1 and containers[0].image == "web:2", f"containers {containers}")
        expect(containers[0].ports[0].container_port == 80, "strategic merge lost the container's ports")
        expect(patched.metadata.generation == 2, f"generation {patched.metadata.generation}")
        ops = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
        expect(self.apps.patch_namespaced_deployment("web", NS, ops).spec.replicas == 3, "json patch replicas")
        read = self.apps.read_namespaced_deployment("web", NS)
        read.metadata.labels["tier"] = "front"
        replaced = self.apps.replace_namespaced_deployment("web", NS, read)
        expect(replaced.metadata.labels == {"app": "web", "tier": "front"}, f"labels {replaced.metadata.labels}")
        scale = self.apps.read_namespaced_deployment_scale("web", NS)
        expect(scale.spec.replicas == 3, f"scale {scale.spec}")
        self.apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})
        expect(self.apps.read_namespaced_deployment("web", NS).spec.replicas == 1, "scale patch")
        status = self.apps.read_namespaced_deployment_status("web", NS)
        expect(status.metadata.name == "web" and status.spec.replicas == 1, "status subresource read")
        names = [d.metadata.name for d in self.apps.list_namespaced_deployment(NS, label_selector="tier=front").items]
        expect(names == ["web"], f"label selector {names}")
        everywhere = self.apps.list_deployment_for_all_namespaces(field_selector=f"metadata.namespace={NS}")
        expect([d.metadata.name for d in everywhere.items] == ["web"], "all-namespaces list")
        self.apps.delete_namespaced_deployment("web", NS, propagation_policy="Background")
        api_error(lambda: self.apps.read_namespaced_deployment("web", NS), 404, "NotFound")

    def service(self):
        port = client.V1ServicePort(name="http", port=80, target_port=8080)
        body = client.V1Service(metadata=meta("api"), spec=client.V1ServiceSpec(selector={"app": "api"}, ports=[port]))
        created = self.core.create_namespaced_service(NS, body)
        ip = created.spec.cluster_ip
        expect(created.spec.type == "ClusterIP", f"type {created.spec.type}")
        expect(ip and ip != "None" and ip.count(".") == 3, f"clusterIP {ip!r}")
        expect(created.spec.cluster_ips == [ip], f"clusterIPs {created.spec.cluster_ips}")
        expect(created.spec.ports[0].protocol == "TCP" and created.spec.ports[0].target_port == 8080, "port defaults")
        patch = {"spec": {"ports": [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]}}
        patched = self.core.patch_namespaced_service("api", NS, patch)
        ports = sorted((p.name, p.port) for p in patched.spec.ports)
        expect(ports == [("http", 80), ("metrics", 9090)], f"ports merge by port: {ports}")
        expect(patched.spec.cluster_ip == ip, "patch changed the clusterIP")
        patched.metadata.labels = {"app": "api"}
        replaced = self.core.replace_namespaced_service("api", NS, patched)
        expect(replaced.spec.cluster_ip == ip, "replace changed the clusterIP")
        names = [s.metadata.name for s in self.core.list_namespaced_service(NS, label_selector="app=api").items]
        expect(names == ["api"], f"selector {names}")
        self.core.delete_namespaced_service("api", NS)
        api_error(lambda: self.core.read_namespaced_service("api", NS), 404, "NotFound")

    def selectors_and_pages(self):
        for i in range(7):
            labels = {"batch": "yes", "parity": "even" if i % 2 == 0 else "odd"}
            self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta(f"item-{i}", labels)))
        self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("keep", {"batch": "no"})))

        def names(**kwargs):
            return sorted(c.metadata.name for c in self.core.list_namespaced_config_map(NS, **kwargs).items)

        expect(names(label_selector="parity=odd") == ["item-1", "item-3", "item-5"], "equality selector")
        expect(names(label_selector="batch=yes,parity!=odd") == ["item-0", "item-2", "item-4", "item-6"], "!=")
        expect(names(label_selector="batch in (no),!parity") == ["keep"], "set-based selector")
        expect(names(field_selector="metadata.name=item-3") == ["item-3"], "field selector")
        expect(names(field_selector="metadata.name!=keep", label_selector="parity=odd")[0] == "item-1", "both")
        # Pages of 3 until `continue` runs out; the pages cover the list once. With a selector, short pages are
        # allowed (k8rs filters each page of keys) and upstream leaves remainingItemCount unset.
        def pages(**kwargs):
            seen, counts, token = [], [], None
            while True:
                page = self.core.list_namespaced_config_map(NS, limit=3, _continue=token, **kwargs)
                expect(len(page.items) <= 3, f"page of {len(page.items)}")
                seen += [c.metadata.name for c in page.items]
                token = page.metadata._continue
                counts.append(page.metadata.remaining_item_count)
                expect(len(counts) < 20, "pagination does not end")
                if not token:
                    return seen, counts

        everything = names()
        seen, counts = pages()
        expect(seen == everything, f"pages gave {seen}, the list {everything}")
        expect(counts == [len(everything) - 3 * (i + 1) for i in range(len(counts) - 1)] + [None], f"counts {counts}")
        seen, counts = pages(label_selector="batch=yes")
        expect(sorted(seen) == [f"item-{i}" for i in range(7)], f"pages gave {seen}")

        def unset():
            expect(counts == [None] * len(counts), f"remainingItemCount per page {counts}")

        # With a selector remainingItemCount is left unset, and pages are filled up to the limit.
        unset()
        # (`batch,`: `!=` alone also matches ConfigMaps without the label, such as kube-root-ca.crt.)
        for label_selector in ["batch=yes", "batch,batch!=yes"]:
            first = self.core.list_namespaced_config_map(NS, limit=3, label_selector=label_selector)
            wanted = 3 if label_selector == "batch=yes" else 1
            expect(len(first.items) == wanted, f"a first page of {len(first.items)} for {label_selector}")
        # delete_collection sends DELETE on the collection with the label selector.
        self.core.delete_collection_namespaced_config_map(NS, label_selector="batch=yes")
        deadline = time.time() + 10
        while names(label_selector="batch") != ["keep"] and time.time() < deadline:
            time.sleep(0.1)
        expect(names(label_selector="batch") == ["keep"], f"left after delete_collection: {names()}")
        self.core.delete_namespaced_config_map("keep", NS)

    def events(self):
        """Python writes timestamps with a numeric offset (`+00:00`); events are listed by involvedObject."""
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        target = self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("target")))
        involved = client.V1ObjectReference(kind="ConfigMap", name="target", namespace=NS, uid=target.metadata.uid)
        for name, obj in [("target.1", involved), ("other.1", client.V1ObjectReference(kind="Pod", name="other"))]:
            event = client.CoreV1Event(
                metadata=meta(name),
                involved_object=obj,
                reason="Tested",
                message="hello from python",
                type="Normal",
                count=1,
                first_timestamp=now,
                last_timestamp=now,
                source=client.V1EventSource(component="python-e2e"),
            )
            self.core.create_namespaced_event(NS, event)
        read = self.core.read_namespaced_event("target.1", NS)
        expect(read.first_timestamp == now and read.last_timestamp == now, f"timestamps {read.first_timestamp}")
        selector = f"involvedObject.name=target,involvedObject.namespace={NS},involvedObject.uid={target.metadata.uid}"
        listed = self.core.list_namespaced_event(NS, field_selector=selector).items
        expect([e.metadata.name for e in listed] == ["target.1"], f"events for target: {listed}")
        listed = self.core.list_namespaced_event(NS, field_selector="involvedObject.kind=Pod").items
        expect([e.metadata.name for e in listed] == ["other.1"], "events by involvedObject.kind")

        # events.k8s.io/v1 serves the same Events as core/v1 (regarding, note, reportingController, ...), as upstream
        # stores them once. New-style events (with eventTime) only: events.k8s.io/v1 requires it.
        micro = datetime.datetime.now(datetime.timezone.utc)
        modern = client.CoreV1Event(
            metadata=meta("modern.1"),
            involved_object=client.V1ObjectReference(kind="ConfigMap", name="modern", namespace=NS),
            reason="Tested",
            message="hello from core",
            type="Normal",
            event_time=micro,
            action="Testing",
            reporting_component="python-e2e",
            reporting_instance="e2e-1",
        )
        self.core.create_namespaced_event(NS, modern)
        events_api = client.EventsV1Api(self.api)
        listed = events_api.list_namespaced_event(NS, field_selector="regarding.name=modern").items
        got = [(e.metadata.name, e.note, e.regarding.kind, e.reporting_controller) for e in listed]
        expect(got == [("modern.1", "hello from core", "ConfigMap", "python-e2e")], f"events.k8s.io/v1 lists {got}")
        created = events_api.create_namespaced_event(
            NS,
            client.EventsV1Event(
                metadata=meta("modern.2"),
                regarding=client.V1ObjectReference(kind="ConfigMap", name="modern2", namespace=NS),
                reason="Tested",
                note="hello from events.k8s.io",
                type="Normal",
                event_time=micro,
                action="Testing",
                reporting_controller="python-e2e",
                reporting_instance="e2e-1",
            ),
        )
        expect(created.note == "hello from events.k8s.io", f"created {created}")
        core_view = self.core.read_namespaced_event("modern.2", NS)
        expect(core_view.message == "hello from events.k8s.io", f"core/v1 shows {core_view.message}")
        expect(core_view.involved_object.name == "modern2", f"core/v1 involvedObject {core_view.involved_object}")
        self.core.delete_collection_namespaced_event(NS)
        self.core.delete_namespaced_config_map("target", NS)
        expect(self.core.list_namespaced_event(NS).items == [], "events left after delete_collection")

    def service_account(self):
        account = self.core.create_namespaced_service_account(NS, client.V1ServiceAccount(metadata=meta("robot")))
        expect(account.metadata.uid, "service account")
        expect(self.core.read_namespaced_service_account("robot", NS).metadata.name == "robot", "read")

        # TokenRequest: a signed JWT for the audience asked for, with its expiry.
        spec = client.V1TokenRequestSpec(audiences=["https://kubernetes.default.svc"], expiration_seconds=3600)
        request = client.AuthenticationV1TokenRequest(spec=spec)
        issued = self.core.create_namespaced_service_account_token("robot", NS, request)
        status = issued.status
        expect(status.token.count(".") == 2 and status.expiration_timestamp, f"token {status}")
        expect(issued.spec.audiences == ["https://kubernetes.default.svc"], f"audiences {issued.spec.audiences}")
        claims = json.loads(base64.urlsafe_b64decode(status.token.split(".")[1] + "=="))
        expect(claims["sub"] == f"system:serviceaccount:{NS}:robot", f"claims {claims}")
        expect(claims["kubernetes.io"]["serviceaccount"]["uid"] == account.metadata.uid, f"claims {claims}")
        lifetime = status.expiration_timestamp - datetime.datetime.fromtimestamp(claims["iat"], datetime.timezone.utc)
        expect(lifetime == datetime.timedelta(seconds=3600), f"expires after {lifetime}")
        api_error(
            lambda: self.core.create_namespaced_service_account_token("nobody", NS, request), 404, "NotFound"
        )
        self.core.delete_namespaced_service_account("robot", NS)

    def custom_objects(self):
        """A CRD, then its objects through CustomObjectsApi (dict patches are merge patches) and the DynamicClient."""
        size = client.V1JSONSchemaProps(type="object", properties={"size": client.V1JSONSchemaProps(type="integer")})
        schema = client.V1CustomResourceValidation(
            open_apiv3_schema=client.V1JSONSchemaProps(type="object", properties={"spec": size})
        )
        crd = client.V1CustomResourceDefinition(
            metadata=meta("widgets.example.com"),
            spec=client.V1CustomResourceDefinitionSpec(
                group="example.com",
                scope="Namespaced",
                names=client.V1CustomResourceDefinitionNames(plural="widgets", singular="widget", kind="Widget"),
                versions=[
                    client.V1CustomResourceDefinitionVersion(name="v1", served=True, storage=True, schema=schema)
                ],
            ),
        )
        extensions = client.ApiextensionsV1Api(self.api)
        created = extensions.create_custom_resource_definition(crd)
        expect(created.spec.versions[0].schema.open_apiv3_schema.properties["spec"].type == "object", "CRD schema")
        names = [c.metadata.name for c in extensions.list_custom_resource_definition().items]
        expect("widgets.example.com" in names, f"CRDs {names}")
        known_gap(
            "custom_objects/served",
            "k8rs stores CRDs but does not serve their resources: POST /apis/example.com/v1/namespaces/py-e2e/widgets "
            "stays 404 NotFound (upstream: served, and the CRD gets an Established condition, within a second)",
            self.widgets,
        )
        extensions.delete_custom_resource_definition("widgets.example.com")

    def widgets(self):
        custom = client.CustomObjectsApi(self.api)
        widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "labels": {"k": "v"}}}
        widget["spec"] = {"size": 1}
        args = ("example.com", "v1", NS, "widgets")
        deadline = time.time() + 5
        while True:
            try:
                created = custom.create_namespaced_custom_object(*args, widget)
                break
            except ApiException as e:
                # Served once the CRD is Established.
                expect(e.status == 404 and time.time() < deadline, f"create: {e.status} {e.body.strip()}")
                time.sleep(0.2)
        expect(created["spec"] == {"size": 1} and created["metadata"]["uid"], f"created {created}")
        expect(custom.get_namespaced_custom_object(*args, "w1")["metadata"]["name"] == "w1", "get")
        patched = custom.patch_namespaced_custom_object(*args, "w1", {"spec": {"size": 2}})
        expect(patched["spec"] == {"size": 2}, f"merge patch {patched}")
        patched["spec"]["size"] = 3
        expect(custom.replace_namespaced_custom_object(*args, "w1", patched)["spec"] == {"size": 3}, "replace")
        listed = custom.list_namespaced_custom_object(*args, label_selector="k=v")
        expect([w["metadata"]["name"] for w in listed["items"]] == ["w1"], f"list {listed}")
        api_error(lambda: custom.get_namespaced_custom_object(*args, "w9"), 404, "NotFound")
        # A fresh DynamicClient discovers the new group.
        widgets = dynamic.DynamicClient(self.api).resources.get(api_version="example.com/v1", kind="Widget")
        expect(widgets.get(name="w1", namespace=NS).spec.size == 3, "dynamic get of a custom object")
        custom.delete_namespaced_custom_object(*args, "w1")
        api_error(lambda: custom.get_namespaced_custom_object(*args, "w1"), 404, "NotFound")

    def watch_live(self):
        """Changes made while a watch is open arrive as ADDED, MODIFIED, DELETED, in order."""
        rv = self.core.list_namespaced_config_map(NS, label_selector="watched=live").metadata.resource_version
        labels = {"watched": "live"}

        def changes():
            time.sleep(0.5)
            self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("w", labels), data={"n": "1"}))
            self.core.patch_namespaced_config_map("w", NS, {"data": {"n": "2"}})
            self.core.delete_namespaced_config_map("w", NS)

        writer = threading.Thread(target=changes)
        writer.start()
        events, w = [], watch.Watch()
        selector = "watched=live"
        stream = w.stream(
            self.core.list_namespaced_config_map, NS, label_selector=selector, resource_version=rv, timeout_seconds=20
        )
        for event in stream:
            obj = event["object"]
            expect(isinstance(obj, client.V1ConfigMap), f"event object {type(obj)}")
            events.append((event["type"], obj.metadata.name, (obj.data or {}).get("n")))
            if event["type"] == "DELETED":
                w.stop()
        writer.join()
        expect(events == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")], f"events {events}")

    def watch_replay(self):
        """As upstream's test_watch: list, change, then watch from the list's resourceVersion (a replay)."""
        labels = {"watched": "replay"}
        rv = self.core.list_namespaced_config_map(NS, label_selector="watched=replay").metadata.resource_version
        for name in ["r1", "r2"]:
            self.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta(name, labels)))
        self.core.patch_namespaced_config_map("r1", NS, {"data": {"k": "v"}})
        self.core.delete_namespaced_config_map("r1", NS)
        self.core.delete_namespaced_config_map("r2", NS)
        started, events, w = time.time(), [], watch.Watch()
        selector = "watched=replay"
        stream = w.stream(
            self.core.list_namespaced_config_map, NS, label_selector=selector, resource_version=rv, timeout_seconds=3
        )
        for event in stream:
            events.append((event["type"], event["object"].metadata.name))
        want = [("ADDED", "r1"), ("ADDED", "r2"), ("MODIFIED", "r1"), ("DELETED", "r1"), ("DELETED", "r2")]
        expect(events == want, f"events {events}")
        # The stream ends when the server closes it at timeoutSeconds.
        expect(2 <= time.time() - started < 15, f"watch lasted {time.time() - started:.1f}s for timeoutSeconds=3")

    def create_from_yaml(self):
        manifest = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: yaml-web
  labels: {{app: yaml-web}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: yaml-web}}
  template:
    metadata:
      labels: {{app: yaml-web}}
    spec:
      containers:
      - name: web
        image: {IMAGE}
---
apiVersion: v1
kind: Service
metadata:
  name: yaml-web
spec:
  selector: {{app: yaml-web}}
  ports:
  - port: 80
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: yaml-cfg
data:
  greeting: hello
"""
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(manifest)
            f.flush()
            created = utils.create_from_yaml(self.api, f.name, namespace=NS)
            kinds = [objects[0].kind for objects in created]
            expect(kinds == ["Deployment", "Service", "ConfigMap"], f"created {kinds}")
            expect(self.apps.read_namespaced_deployment("yaml-web", NS).spec.replicas == 2, "deployment")
            expect(self.core.read_namespaced_service("yaml-web", NS).spec.cluster_ip, "service has no clusterIP")
            expect(self.core.read_namespaced_config_map("yaml-cfg", NS).data == {"greeting": "hello"}, "configmap")
            # Again: every object already exists, and the error text is upstream's byte for byte (as test_utils).
            try:
                utils.create_from_yaml(self.api, f.name, namespace=NS)
                raise AssertionError("second create_from_yaml succeeded")
            except utils.FailToCreateError as e:
                failure = e
        errors = failure.api_exceptions
        expect([e.status for e in errors] == [409, 409, 409], f"statuses {[e.status for e in errors]}")
        want = (
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"yaml-cfg\\" '
            'already exists","reason":"AlreadyExists","details":{"name":"yaml-cfg","kind":"configmaps"},"code":409}\n'
        )
        expect(errors[2].body == want, f"body {errors[2].body!r}\nwant {want!r}")
        want = (
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps '
            '\\"yaml-web\\" already exists","reason":"AlreadyExists","details":{"name":"yaml-web","group":"apps",'
            '"kind":"deployments"},"code":409}\n'
        )
        expect(errors[0].body == want, f"body {errors[0].body!r}\nwant {want!r}")
        expect(str(failure).startswith("Error from server (Conflict): {"), str(failure))

    def dynamic_client(self):
        dyn = dynamic.DynamicClient(self.api)  # legacy discovery: /api, /apis, /api/v1, /apis/{g}/{v}
        configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
        expect(configmaps.namespaced and configmaps.name == "configmaps", f"resource {configmaps}")
        deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        expect(deployments.group == "apps" and deployments.namespaced, "deployments resource")
        expect(dyn.resources.get(api_version="v1", kind="Namespace").namespaced is False, "namespaces scope")
        got = deployments.get(name="yaml-web", namespace=NS)
        expect(got.spec.replicas == 2 and got.metadata.name == "yaml-web", f"get {got.metadata}")
        listed = configmaps.get(namespace=NS, label_selector="")
        expect("yaml-cfg" in [c.metadata.name for c in listed.items], "dynamic list")
        dynamic_404 = None
        try:
            configmaps.get(name="nope", namespace=NS)
        except dynamic.exceptions.NotFoundError as e:
            dynamic_404 = e
        expect(dynamic_404 is not None and dynamic_404.status == 404, "dynamic 404")

        # Server-side apply creates, then updates; the field manager is recorded.
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}}
        applied = configmaps.server_side_apply(body=body, namespace=NS, field_manager="python-client")
        expect(applied.data.a == "1", f"apply create: {applied.data}")
        body["data"] = {"a": "2", "b": "3"}
        applied = configmaps.patch(
            body=body, namespace=NS, content_type="application/apply-patch+yaml", field_manager="python-client"
        )
        expect(dict(applied.data) == {"a": "2", "b": "3"}, f"apply update: {applied.data}")
        managers = [(m.manager, m.operation) for m in applied.metadata.managedFields or []]
        expect(("python-client", "Apply") in managers, f"managedFields {managers}")
        # Another manager changing an owned field without force is a 409 Conflict.
        body["data"] = {"a": "other"}
        try:
            configmaps.server_side_apply(body=body, namespace=NS, field_manager="someone-else")
            raise AssertionError("conflicting apply succeeded")
        except dynamic.exceptions.ConflictError as e:
            expect(json.loads(e.body)["reason"] == "Conflict", e.body)
        applied = configmaps.server_side_apply(
            body=body, namespace=NS, field_manager="someone-else", force_conflicts=True
        )
        expect(applied.data.a == "other", f"forced apply: {applied.data}")
        # create_from_yaml(apply=True) goes the same way for a whole object.
        manifest = self.api.sanitize_for_serialization(deployment_body("applied-web"))
        manifest.update(apiVersion="apps/v1", kind="Deployment")
        utils.create_from_yaml(self.api, yaml_objects=[manifest], namespace=NS, apply=True)
        expect(self.apps.read_namespaced_deployment("applied-web", NS).spec.replicas == 1, "applied deployment")

    def cleanup(self):
        self.core.delete_namespace(NS)


def main():
    suite = Suite()
    checks = [
        "version",
        "namespace",
        "configmap",
        "secret",
        "deployment",
        "service",
        "selectors_and_pages",
        "events",
        "service_account",
        "custom_objects",
        "watch_live",
        "watch_replay",
        "create_from_yaml",
        "dynamic_client",
        "cleanup",
    ]
    failed = []
    for name in checks:
        try:
            getattr(suite, name)()
            print(f"ok: {name}", flush=True)
        except Exception:
            failed.append(name)
            print(f"FAIL: {name}\n{traceback.format_exc()}", flush=True)
    print(f"checks: {len(checks) - len(failed)} ok, {len(failed)} failed; parts with known k8rs gaps: {len(GAPS)}")
    sys.exit(1 if failed else 0)


main()
