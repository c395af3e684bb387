//! The `[ledger]` section: the account codes the `journal` report posts to.
//! `[ledger.accounts]` in the file (`revenue = "4000"`), `REVLINE_LEDGER_ACCOUNT_<NAME>` in
//! the environment (`REVLINE_LEDGER_ACCOUNT_REVENUE=4000`), over the defaults of
//! `reports::journal::ACCOUNTS`. An unknown account name is refused, naming the known ones.

use std::collections::BTreeMap;

use reports::journal::Accounts;
use serde::Deserialize;

use super::{err, ConfigError, Env};

const ENV_PREFIX: &str = "REVLINE_LEDGER_ACCOUNT_";

/// The `[ledger]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLedger {
    /// `ledger.accounts.<name>`: an account's code.
    #[serde(default)]
    accounts: BTreeMap<String, String>,
}

pub(super) fn load(file: FileLedger, env: &Env) -> Result<Accounts, ConfigError> {
    let mut accounts = Accounts::default();
    for (name, code) in &file.accounts {
        accounts
            .set(name, code)
            .map_err(|m| err(format!("ledger.accounts.{name}"), m))?;
    }
    for (key, code) in env.range(ENV_PREFIX.to_owned()..) {
        let Some(name) = key.strip_prefix(ENV_PREFIX) else {
            break;
        };
        accounts
            .set(&name.to_ascii_lowercase(), code)
            .map_err(|m| err(key.clone(), m))?;
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{load, load_toml};

    #[test]
    fn account_codes_come_from_the_file_then_the_environment() {
        let c = load(&[]).unwrap();
        assert_eq!(c.ledger.code("revenue"), "4000");
        let c = load_toml(
            "[ledger.accounts]\nrevenue = \"4010\"\nbank = \"1001\"\n",
            &[("REVLINE_LEDGER_ACCOUNT_BANK", "1002")],
        )
        .unwrap();
        assert_eq!(
            (c.ledger.code("revenue"), c.ledger.code("bank")),
            ("4010", "1002")
        );
        let e = load(&[("REVLINE_LEDGER_ACCOUNT_REVENEU", "1")]).unwrap_err();
        assert_eq!(e.key, "REVLINE_LEDGER_ACCOUNT_REVENEU");
        assert!(e.message.contains("known: bank"), "{e}");
        let e = load_toml("[ledger.accounts]\nbank = \"\"\n", &[]).unwrap_err();
        assert_eq!(e.key, "ledger.accounts.bank");
    }
}
