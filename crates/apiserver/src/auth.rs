//! Authentication: who sent a request, from the TLS client certificate (CN = user, O = groups) or a bearer
//! token: one from the token file, or a service-account token this server issued (verified in
//! `serviceaccounts`). Requests with neither are anonymous.

use std::collections::HashMap;
use std::path::Path;

/// The authenticated user of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// What else the credential says (a ServiceAccount token's id, and the pod or node it is bound to).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl Identity {
    /// Who sends a request with no credentials (allowed only on the public paths).
    pub fn anonymous() -> Identity {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }
    }

    /// What every authenticated user also belongs to, as upstream adds it.
    fn with_authenticated_group(mut self) -> Identity {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    /// The identity a verified client certificate names.
    pub fn from_certificate(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
        Some(Identity { user, groups, ..Default::default() }.with_authenticated_group())
    }
}

/// Static bearer tokens, as kube-apiserver's `--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`.
#[derive(Clone, Debug, Default)]
pub struct TokenFile {
    tokens: HashMap<String, Identity>,
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<TokenFile, String> {
        let mut tokens = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                return Err(format!("line {}: expected token,user,uid[,\"groups\"]", number + 1));
            }
            let groups = fields
                .get(3)
                .map(|g| g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            let identity = Identity { user: fields[1].clone(), uid: fields[2].clone(), groups, ..Default::default() };
            tokens.insert(fields[0].clone(), identity.with_authenticated_group());
        }
        Ok(TokenFile { tokens })
    }

    pub fn insert(&mut self, token: String, identity: Identity) {
        self.tokens.insert(token, identity.with_authenticated_group());
    }

    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        self.tokens.get(token)
    }
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_name_user_uid_and_groups() {
        let file = TokenFile::parse("# comment\nt0k3n,alice,1001,\"dev,ops\"\nother,bob,1002\n").unwrap();
        let alice = file.authenticate("t0k3n").unwrap();
        assert_eq!(alice.user, "alice");
        assert_eq!(alice.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(file.authenticate("other").unwrap().groups, vec!["system:authenticated"]);
        assert!(file.authenticate("nope").is_none());
        assert!(TokenFile::parse("onlytoken\n").is_err());
    }
}
