//! The admin API (`/admin/…`): accounts, connectors, plugin bindings, system-scope API keys, plugins,
//! the directory's groups, policy examples and the audit log.

use idfed_api::admin::{
    AccountBody, AccountList, ApiKeyBody, ApiKeyInput, ApiKeyList, BindingBody, BindingInput,
    BindingList, ConnectorDetail, ConnectorDetailList, FlushedBody, GroupList, PluginBody,
    PluginList, PolicyExample, PolicyExampleList,
};
use idfed_api::audit::{AuditQuery, AuditRecord, AuditRecords};
use reqwest::Method;

use crate::{Body, Client, Error, encode};

/// Whether a `PUT` made something new or replaced what was there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// It was made (201).
    Created,
    /// It replaced what was there (200).
    Replaced,
}

/// The administrator's calls, from [`Client::admin`].
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    client: &'a Client,
}

impl<'a> Admin<'a> {
    pub(crate) fn new(client: &'a Client) -> Self {
        Admin { client }
    }

    /// `GET /admin/accounts`: the AWS accounts (secrets shown as [`idfed_api::admin::REDACTED`]).
    pub async fn accounts(&self) -> Result<Vec<AccountBody>, Error> {
        Ok(self
            .client
            .get::<AccountList>("/admin/accounts")
            .await?
            .accounts)
    }

    /// `GET /admin/accounts/{name}`.
    pub async fn account(&self, name: &str) -> Result<AccountBody, Error> {
        self.client
            .get(&format!("/admin/accounts/{}", encode(name)))
            .await
    }

    /// `PUT /admin/accounts/{name}`: creates or replaces an account (a secret left out, or sent back as
    /// [`idfed_api::admin::REDACTED`], keeps the stored one).
    pub async fn put_account(
        &self,
        name: &str,
        account: &AccountBody,
    ) -> Result<(AccountBody, Written), Error> {
        let answer = self
            .client
            .send(
                Method::PUT,
                &format!("/admin/accounts/{}", encode(name)),
                Client::json(account),
                &[],
                false,
            )
            .await?;
        Ok((self.client.decode(&answer)?, written(answer.status)))
    }

    /// `DELETE /admin/accounts/{name}`.
    pub async fn delete_account(&self, name: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/admin/accounts/{}", encode(name)))
            .await
    }

    /// `GET /admin/connectors`: every connector, in full.
    pub async fn connectors(&self) -> Result<Vec<ConnectorDetail>, Error> {
        Ok(self
            .client
            .get::<ConnectorDetailList>("/admin/connectors")
            .await?
            .connectors)
    }

    /// `GET /admin/connectors/{c}`: a connector in full, by id or name; its `revision` is what
    /// [`Admin::replace_connector`] takes as `if_match`.
    pub async fn connector(&self, connector: &str) -> Result<ConnectorDetail, Error> {
        self.client
            .get(&format!("/admin/connectors/{}", encode(connector)))
            .await
    }

    /// `POST /admin/connectors`: creates a connector (the server assigns its id; bind plugins with
    /// [`Admin::bind`]).
    pub async fn create_connector(
        &self,
        connector: &ConnectorDetail,
    ) -> Result<ConnectorDetail, Error> {
        self.client.post("/admin/connectors", connector).await
    }

    /// `PUT /admin/connectors/{c}`: replaces a connector (its bindings kept unless given); with
    /// `if_match` (a `revision`), only if nobody changed it since (else `precondition_failed`).
    pub async fn replace_connector(
        &self,
        connector: &str,
        detail: &ConnectorDetail,
        if_match: Option<&str>,
    ) -> Result<ConnectorDetail, Error> {
        let quoted = if_match.map(|revision| format!("\"{revision}\""));
        let headers: Vec<(&str, &str)> = quoted
            .as_deref()
            .map(|tag| ("if-match", tag))
            .into_iter()
            .collect();
        let answer = self
            .client
            .send(
                Method::PUT,
                &format!("/admin/connectors/{}", encode(connector)),
                Client::json(detail),
                &headers,
                false,
            )
            .await?;
        self.client.decode(&answer)
    }

    /// `DELETE /admin/connectors/{c}`: deletes a connector and its bindings.
    pub async fn delete_connector(&self, connector: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/admin/connectors/{}", encode(connector)))
            .await
    }

    /// `POST /admin/connectors/{c}/cache/flush`: ends the connector's cached credentials.
    pub async fn flush_cache(&self, connector: &str) -> Result<FlushedBody, Error> {
        self.client
            .post(
                &format!("/admin/connectors/{}/cache/flush", encode(connector)),
                &serde_json::json!({}),
            )
            .await
    }

    /// `GET /admin/connectors/{c}/bindings`: the connector's plugin chain.
    pub async fn bindings(&self, connector: &str) -> Result<BindingList, Error> {
        self.client
            .get(&format!("/admin/connectors/{}/bindings", encode(connector)))
            .await
    }

    /// `POST /admin/connectors/{c}/bindings`: binds a stored plugin (its configuration checked by the
    /// plugin first); the binding, with its id and position.
    pub async fn bind(
        &self,
        connector: &str,
        binding: &BindingInput,
    ) -> Result<BindingBody, Error> {
        self.client
            .post(
                &format!("/admin/connectors/{}/bindings", encode(connector)),
                binding,
            )
            .await
    }

    /// `DELETE /admin/connectors/{c}/bindings/{id}`.
    pub async fn unbind(&self, connector: &str, binding_id: &str) -> Result<(), Error> {
        self.client
            .delete(&format!(
                "/admin/connectors/{}/bindings/{}",
                encode(connector),
                encode(binding_id)
            ))
            .await
    }

    /// `GET /admin/api-keys`: the system-scope API keys (never their secrets).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyBody>, Error> {
        let mut list = self.client.get::<ApiKeyList>("/admin/api-keys").await?;
        Ok(std::mem::take(&mut list.api_keys))
    }

    /// `POST /admin/api-keys`: a new key, with its secret `key` (shown only in this answer).
    pub async fn create_api_key(&self, key: &ApiKeyInput) -> Result<ApiKeyBody, Error> {
        self.client.post("/admin/api-keys", key).await
    }

    /// `DELETE /admin/api-keys/{id}`: revokes a key.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/admin/api-keys/{}", encode(id)))
            .await
    }

    /// `GET /admin/plugins`: the stored plugins, with where each is bound.
    pub async fn plugins(&self) -> Result<Vec<PluginBody>, Error> {
        Ok(self
            .client
            .get::<PluginList>("/admin/plugins")
            .await?
            .plugins)
    }

    /// `POST /admin/plugins`: stores a WebAssembly component (by its digest; `name` groups the uploads
    /// of one plugin). [`Written::Replaced`] when it was already stored.
    pub async fn upload_plugin(
        &self,
        wasm: &[u8],
        name: Option<&str>,
    ) -> Result<(PluginBody, Written), Error> {
        let path = match name {
            Some(name) => format!("/admin/plugins?name={}", encode(name)),
            None => "/admin/plugins".to_owned(),
        };
        let answer = self
            .client
            .send(
                Method::POST,
                &path,
                Body::Bytes("application/wasm", wasm),
                &[],
                false,
            )
            .await?;
        Ok((self.client.decode(&answer)?, written(answer.status)))
    }

    /// `DELETE /admin/plugins/{digest}`: deletes a plugin no connector uses.
    pub async fn delete_plugin(&self, digest: &str) -> Result<(), Error> {
        self.client
            .delete(&format!("/admin/plugins/{}", encode(digest)))
            .await
    }

    /// `GET /admin/groups`: the directory's groups.
    pub async fn groups(&self) -> Result<GroupList, Error> {
        self.client.get("/admin/groups").await
    }

    /// `GET /admin/policy-examples`: IAM session policies to start a connector's `policy` from.
    pub async fn policy_examples(&self) -> Result<Vec<PolicyExample>, Error> {
        Ok(self
            .client
            .get::<PolicyExampleList>("/admin/policy-examples")
            .await?
            .examples)
    }

    /// `GET /admin/audit`: audit records, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, Error> {
        let pairs: Vec<String> = query
            .pairs()
            .into_iter()
            .map(|(name, value)| format!("{name}={}", encode(&value)))
            .collect();
        let path = if pairs.is_empty() {
            "/admin/audit".to_owned()
        } else {
            format!("/admin/audit?{}", pairs.join("&"))
        };
        Ok(self.client.get::<AuditRecords>(&path).await?.records)
    }
}

fn written(status: u16) -> Written {
    if status == 201 {
        Written::Created
    } else {
        Written::Replaced
    }
}
