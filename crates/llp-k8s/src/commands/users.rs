//! `llp-k8s users add NAME [--group G]... [--admin] [--db PATH]`.

use super::Outcome;
use crate::cli::UsersCommand;
use anyhow::Context;
use llp_k8s::records::embedded::EmbeddedStore;

pub fn run(command: UsersCommand) -> anyhow::Result<Outcome> {
    match command {
        UsersCommand::Add {
            name,
            groups,
            admin,
            db,
        } => {
            let store = EmbeddedStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
            let (user, token) = store
                .add_user(&name, &groups, admin)
                .context("cannot create the user")?;
            println!("{token}");
            eprintln!(
                "llp-k8s: created user {} ({}) in {}; the token above is not shown again",
                user.name,
                user.id,
                db.display()
            );
            Ok(Outcome::Success)
        }
    }
}
