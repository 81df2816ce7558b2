//! How a node joins: with the cluster's join token it fetches the CA (`GET /cacerts`, public, so that the agent can
//! check it against the hash in the token) and has the CA sign its own key pairs (`POST /v1-k8rs/node-certificates`):
//! a client certificate for `system:node:NAME` and a serving certificate for its kubelet. Private keys never leave
//! the node; the server decides every field of the certificates.

use std::net::IpAddr;

use apimachinery::status::Status;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, Body};
use crate::{Identity, State};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeCertificatesRequest {
    node_name: String,
    client_request: String,
    serving_request: String,
    #[serde(default)]
    addresses: Vec<IpAddr>,
    #[serde(default)]
    hostnames: Vec<String>,
}

pub fn ca_certificate(state: &State) -> Response<Body> {
    http::respond(StatusCode::OK, "application/x-pem-file", state.pki.ca.cert_pem.clone())
}

pub fn node_certificates(state: &State, identity: &Identity, body: &[u8]) -> Response<Body> {
    let request: NodeCertificatesRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return http::status(&Status::bad_request(format!("invalid node certificates request: {e}"))),
    };
    let nodes = apimachinery::registry::find("", "v1", "nodes").expect("nodes are registered");
    if let Some(cause) = crate::objects::validate_name(nodes, &request.node_name).first() {
        return http::status(&Status::bad_request(format!("invalid node name: {}", cause.message)));
    }
    let may_join = identity.groups.iter().any(|g| g == "system:bootstrappers" || g == "system:masters")
        || identity.user == format!("system:node:{}", request.node_name);
    if !may_join {
        return http::status(&Status::forbidden(format!(
            "user {:?} may not obtain certificates for node {:?}",
            identity.user, request.node_name
        )));
    }
    let issued = state.pki.issuer().map_err(|e| e.to_string()).and_then(|issuer| {
        let client = crate::pki::sign_node_request(&issuer, &request.client_request, &request.node_name, None)?;
        let serving = crate::pki::sign_node_request(
            &issuer,
            &request.serving_request,
            &request.node_name,
            Some((&request.hostnames, &request.addresses)),
        )?;
        Ok((client, serving))
    });
    match issued {
        Ok((client, serving)) => {
            tracing::info!(node = %request.node_name, user = %identity.user, "issued node certificates");
            http::json(
                StatusCode::OK,
                &json!({"ca": state.pki.ca.cert_pem, "clientCertificate": client, "servingCertificate": serving}),
            )
        }
        Err(message) => http::status(&Status::bad_request(message)),
    }
}
