//! Connectors' plugin chains, loaded from the store once and kept while the connector's bindings stay the
//! same. A binding whose plugin cannot be loaded or whose configuration is no longer accepted makes the
//! chain a fault naming that binding: the connector then vends nothing (fail closed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::model::{BindingSpec, Connector};
use crate::plugins::{BindError, Binding, PluginFault, PluginRuntime};
use crate::store::Store;

type Chain = Result<Arc<Vec<Binding>>, (String, PluginFault)>;
/// Each connector's chain, with the bindings it was loaded from.
type Loaded = HashMap<Uuid, (Vec<BindingSpec>, Chain)>;

#[derive(Clone)]
pub(super) struct Chains {
    store: Arc<dyn Store>,
    plugins: PluginRuntime,
    loaded: Arc<Mutex<Loaded>>,
}

impl Chains {
    pub fn new(store: Arc<dyn Store>, plugins: PluginRuntime) -> Self {
        Chains {
            store,
            plugins,
            loaded: Arc::default(),
        }
    }

    pub fn plugins(&self) -> &PluginRuntime {
        &self.plugins
    }

    /// The connector's chain, loading it if its bindings changed since it was last loaded.
    pub async fn get(&self, connector: &Connector) -> Chain {
        if connector.bindings.is_empty() {
            return Ok(Arc::default());
        }
        if let Some((specs, chain)) = self.loaded.lock().unwrap().get(&connector.id)
            && *specs == connector.bindings
        {
            return chain.clone();
        }
        let chain = self.load(&connector.bindings).await;
        // A plugin that was busy or slow while its configuration was checked may not be next time: only
        // lasting outcomes are kept.
        let transient = matches!(
            &chain,
            Err((_, PluginFault::Busy { .. } | PluginFault::Timeout { .. }))
        );
        if !transient {
            self.loaded
                .lock()
                .unwrap()
                .insert(connector.id, (connector.bindings.clone(), chain.clone()));
        }
        chain
    }

    async fn load(&self, specs: &[BindingSpec]) -> Chain {
        let mut chain = Vec::with_capacity(specs.len());
        for spec in specs {
            let fault = |fault: PluginFault| (spec.id.clone(), fault);
            let wasm = match self.store.get_plugin(&spec.plugin) {
                Ok(Some(wasm)) => wasm,
                Ok(None) => {
                    return Err(fault(PluginFault::Incompatible(format!(
                        "plugin {} is not stored",
                        spec.plugin
                    ))));
                }
                Err(e) => {
                    return Err(fault(PluginFault::Incompatible(format!(
                        "plugin {}: {e}",
                        spec.plugin
                    ))));
                }
            };
            let (runtime, digest) = (self.plugins.clone(), spec.plugin.clone());
            // Compiling takes CPU for up to a second: off the async workers.
            let plugin = tokio::task::spawn_blocking(move || {
                runtime.load(digest.get(..12).unwrap_or(&digest), &wasm)
            })
            .await
            .map_err(|e| fault(PluginFault::Instantiate(e.to_string())))?
            .map_err(|e| fault(e.into()))?;
            let binding = self
                .plugins
                .bind_with(&spec.id, plugin, &spec.config, &spec.options())
                .await
                .map_err(|e| {
                    fault(match e {
                        BindError::Fault(f) => f,
                        other => PluginFault::Incompatible(format!(
                            "the binding's configuration is no longer accepted: {other}"
                        )),
                    })
                })?;
            chain.push(binding);
        }
        Ok(Arc::new(chain))
    }
}
