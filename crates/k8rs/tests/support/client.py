"""A minimal HTTPS client for the tests: speaks to a k8rs server as a kubeconfig's user, or anonymously.

usage: client.py KUBECONFIG|--anonymous=CA:PORT METHOD PATH [BODY|@FILE [CONTENT-TYPE]]
Prints the status code on the first line, then the body; a watch's events come one per line as they arrive.
"""
import base64, http.client, os, ssl, sys, tempfile


def connect(target, tmp):
    if target.startswith("--anonymous="):
        ca, port = target.split("=", 1)[1].rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx)
    # The kubeconfig that k8rs writes: one cluster, one user, base64 data fields.
    fields = {}
    for line in open(target):
        key, _, value = line.strip().partition(": ")
        fields[key] = value
    server = fields["server"]
    host, port = server.split("//")[1].rsplit(":", 1)
    paths = {}
    for name in ["certificate-authority-data", "client-certificate-data", "client-key-data"]:
        paths[name] = os.path.join(tmp, name)
        with open(paths[name], "wb") as f:
            f.write(base64.b64decode(fields[name]))
    ctx = ssl.create_default_context(cafile=paths["certificate-authority-data"])
    ctx.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
    return http.client.HTTPSConnection(host, int(port), context=ctx)


def main():
    target, method, path = sys.argv[1:4]
    body = sys.argv[4].encode() if len(sys.argv) > 4 else None
    if body and body.startswith(b"@"):
        body = open(body[1:], "rb").read()
    content_type = sys.argv[5] if len(sys.argv) > 5 else "application/json"
    # The credentials are written out for the ssl module only for the life of this request.
    with tempfile.TemporaryDirectory(prefix="k8rs-client-") as tmp:
        request(connect(target, tmp), method, path, body, content_type)


def request(conn, method, path, body, content_type):
    headers = {"Content-Type": content_type} if body else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    print(response.status, flush=True)
    while True:
        line = response.readline()
        if not line:
            break
        sys.stdout.write(line.decode())
        sys.stdout.flush()


main()
