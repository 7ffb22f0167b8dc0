//! `idfed plugin new NAME --lang rust|python`: writes a ready plugin project — a manifest, one source file,
//! a test and a README — that builds and passes `idfed plugin check` with no edit.
//!
//! A Python project is self-contained: it carries the Python SDK (`idfed_policy/`) and the WIT of the
//! contract (`wit/`), both as this build of idfed has them. A Rust project depends on the Rust SDK by path
//! (`--sdk`, by default the `sdk/plugin` of the source tree idfed was built from, when it is still there).

use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built with `cargo build --release --target wasm32-wasip2`.
    Rust,
    /// A Python module built with componentize-py.
    Python,
}

const WIT: &[(&str, &str)] = &[
    (
        "clock.wit",
        include_str!("../../../wit/since_v0.2.0/clock.wit"),
    ),
    ("kv.wit", include_str!("../../../wit/since_v0.2.0/kv.wit")),
    ("log.wit", include_str!("../../../wit/since_v0.2.0/log.wit")),
    (
        "policy.wit",
        include_str!("../../../wit/since_v0.2.0/policy.wit"),
    ),
    (
        "types.wit",
        include_str!("../../../wit/since_v0.2.0/types.wit"),
    ),
    (
        "world.wit",
        include_str!("../../../wit/since_v0.2.0/world.wit"),
    ),
];

const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/python/idfed_policy/__init__.py"),
    ),
    (
        "_wit.py",
        include_str!("../../../sdk/python/idfed_policy/_wit.py"),
    ),
    (
        "host.py",
        include_str!("../../../sdk/python/idfed_policy/host.py"),
    ),
    (
        "iam.py",
        include_str!("../../../sdk/python/idfed_policy/iam.py"),
    ),
    (
        "testing.py",
        include_str!("../../../sdk/python/idfed_policy/testing.py"),
    ),
    (
        "types.py",
        include_str!("../../../sdk/python/idfed_policy/types.py"),
    ),
];

/// The Rust SDK of the source tree this idfed was built from, if it is still there.
pub fn default_rust_sdk() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/plugin");
    path.join("Cargo.toml")
        .is_file()
        .then(|| path.canonicalize().ok())?
}

/// Checks a plugin name: a Rust crate name and a file name both (`a-z`, `0-9`, `-`, `_`, a letter first).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid plugin name {name:?}: use a-z, 0-9, - and _, starting with a letter (at most 64)"
        ))
    }
}

/// The files of a new project, by path relative to its directory.
pub fn files(
    name: &str,
    lang: Lang,
    rust_sdk: Option<&Path>,
) -> Result<Vec<(String, String)>, String> {
    check_name(name)?;
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
    };
    let mut out = Vec::new();
    match lang {
        Lang::Python => {
            out.push(("pyproject.toml".into(), fill(PY_MANIFEST)));
            out.push(("app.py".into(), fill(PY_APP)));
            out.push(("test_app.py".into(), fill(PY_TEST)));
            out.push(("README.md".into(), fill(PY_README)));
            for (file, text) in PYTHON_SDK {
                out.push((format!("idfed_policy/{file}"), (*text).to_owned()));
            }
            for (file, text) in WIT {
                out.push((format!("wit/{file}"), (*text).to_owned()));
            }
        }
        Lang::Rust => {
            let sdk = rust_sdk.ok_or(
                "where is the Rust SDK (idfed's sdk/plugin)? give its folder with --sdk".to_owned(),
            )?;
            let sdk = sdk.to_str().ok_or("the SDK's path is not UTF-8")?;
            out.push((
                "Cargo.toml".into(),
                fill(RUST_MANIFEST)
                    .replace("{{sdk}}", &sdk.replace('\\', "\\\\").replace('"', "\\\"")),
            ));
            out.push(("src/lib.rs".into(), fill(RUST_LIB)));
            out.push(("README.md".into(), fill(RUST_README)));
        }
    }
    Ok(out)
}

/// Writes the project into `dir` (which must not exist, or be empty).
pub fn write(dir: &Path, files: &[(String, String)]) -> Result<(), String> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .next()
            .is_some()
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

const PY_MANIFEST: &str = r#"[project]
name = "{{name}}"
version = "0.1.0"
description = "An idfed policy plugin (idfed:policy@0.2.0)"
requires-python = ">=3.11"

[tool.idfed]
contract = "idfed:policy@0.2.0"
# Run in this folder; componentize-py 0.25.1 from PyPI (`pip install componentize-py==0.25.1`).
build = "componentize-py -d wit -w policy-plugin componentize -p . app -o {{name}}.wasm"
test = "python3 -m unittest"
"#;

const PY_APP: &str = r#""""idfed policy plugin `{{name}}`: allows members of the configured groups, refuses everyone else."""

from idfed_policy import ConfigError, Plugin, allow_unchanged, deny, export, host


class Plugin_(Plugin):
    def check_config(self, config):
        groups = config.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ConfigError("groups must be a list of group names", "/groups")

    def evaluate(self, config, request):
        groups = config.get("groups", [])
        if not groups or request.caller.in_any_group(groups):
            return allow_unchanged(request)
        host.info(f"refused {request.caller.user_name!r}: not in {groups}")
        return deny("you must belong to one of: " + ", ".join(groups))


Policy = export(Plugin_)
"#;

const PY_TEST: &str = r#""""Unit tests of `{{name}}`, in plain CPython: `python3 -m unittest`."""

import unittest

from idfed_policy import Allow, ConfigError, Deny, evaluate, validate_config
from idfed_policy.testing import sample_request

from app import Plugin_


class PluginTest(unittest.TestCase):
    def test_members_are_allowed_and_others_refused(self):
        self.assertIsInstance(evaluate(Plugin_, '{"groups": ["dev"]}', sample_request()), Allow)
        self.assertIsInstance(evaluate(Plugin_, '{"groups": ["ops"]}', sample_request()), Deny)

    def test_config_is_checked(self):
        with self.assertRaises(ConfigError):
            validate_config(Plugin_, '{"groups": "dev"}')


if __name__ == "__main__":
    unittest.main()
"#;

const PY_README: &str = r#"# {{name}}

An idfed policy plugin in Python (contract `idfed:policy@0.2.0`): allows members of the groups in its
configuration, `{"groups": ["dev"]}`, and refuses everyone else (no groups: allows everyone).

- `app.py`: the plugin; `test_app.py`: its unit tests; `pyproject.toml`: the manifest.
- `idfed_policy/`: the idfed Python SDK, `wit/`: the contract — copies, as `idfed plugin new` wrote them.

    pip install componentize-py==0.25.1
    python3 -m unittest                                         # test
    componentize-py -d wit -w policy-plugin componentize -p . app -o {{name}}.wasm   # build (~20 s)
    idfed plugin check {{name}}.wasm                            # what the server will say
    idfed admin plugins upload {{name}}.wasm                    # deploy

A Python component is ~18 MiB and needs at least 13 MiB of memory (the default 16 MiB fits).
"#;

const RUST_MANIFEST: &str = r#"[package]
name = "{{name}}"
description = "An idfed policy plugin (idfed:policy@0.2.0)"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
idfed-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A workspace of its own, wherever it is put.
[workspace]
"#;

const RUST_LIB: &str = r##"//! idfed policy plugin `{{name}}`: allows members of the configured groups, refuses everyone else.

use idfed_sdk::{ConfigError, Decision, PluginError, Policy, Request};
use serde::Deserialize;

/// The plugin.
pub struct Plugin;

/// The configuration: `{"groups": ["dev"]}`; no groups allows everyone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Callers must belong to one of these groups.
    pub groups: Vec<String>,
}

impl Policy for Plugin {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        if config.groups.iter().any(String::is_empty) {
            return Err(ConfigError::at("/groups", "a group name is empty"));
        }
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        if config.groups.is_empty() || request.caller_in_any_group(&config.groups) {
            return Ok(Decision::allow_unchanged(request));
        }
        idfed_sdk::log!(info, "refused {:?}", request.caller.user_name);
        Ok(Decision::deny(format!(
            "you must belong to one of: {}",
            config.groups.join(", ")
        )))
    }
}

idfed_sdk::export_policy!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::testing::sample_request;

    #[test]
    fn members_are_allowed_and_others_refused() {
        let r = sample_request();
        let group = r.caller.groups[0].clone();
        let allowed = idfed_sdk::evaluate::<Plugin>(&format!(r#"{{"groups": ["{group}"]}}"#), &r);
        assert!(allowed.unwrap().is_allow());
        let refused = idfed_sdk::evaluate::<Plugin>(r#"{"groups": ["nobody-is-in-this"]}"#, &r);
        assert!(!refused.unwrap().is_allow());
        assert!(idfed_sdk::validate_config::<Plugin>(r#"{"groups": [""]}"#).is_err());
    }
}
"##;

const RUST_README: &str = r#"# {{name}}

An idfed policy plugin in Rust (contract `idfed:policy@0.2.0`): allows members of the groups in its
configuration, `{"groups": ["dev"]}`, and refuses everyone else (no groups: allows everyone).

- `src/lib.rs`: the plugin and its unit tests; `Cargo.toml`: the manifest (the idfed SDK by path).

    cargo test                                              # test
    cargo build --release --target wasm32-wasip2            # build (rustup target add wasm32-wasip2)
    idfed plugin check target/wasm32-wasip2/release/{{crate}}.wasm
    idfed admin plugins upload target/wasm32-wasip2/release/{{crate}}.wasm
"#;
