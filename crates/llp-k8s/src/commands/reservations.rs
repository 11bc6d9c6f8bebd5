//! `llp-k8s reservations add|list|remove`: GPU bookings in the embedded record source, for
//! the operator at the command line (who acts as an admin of the file).

use super::Outcome;
use crate::cli::ReservationsCommand;
use anyhow::Context;
use llp_k8s::records::Identity;
use llp_k8s::records::embedded::{EmbeddedStore, ReservationInput, UserRef};
use llp_spec::reservations::readable;
use std::path::Path;

/// Whoever may open the file may book: the command line acts as an admin.
pub(super) fn operator() -> Identity {
    Identity {
        id: "command-line".into(),
        name: "the command line".into(),
        groups: Vec::new(),
        admin: true,
    }
}

fn open(db: &Path) -> anyhow::Result<EmbeddedStore> {
    EmbeddedStore::open(db).with_context(|| format!("cannot open {}", db.display()))
}

pub fn run(command: ReservationsCommand) -> anyhow::Result<Outcome> {
    match command {
        ReservationsCommand::Add {
            users,
            course,
            gpus,
            start,
            end,
            deployment,
            db,
        } => {
            let store = open(&db)?;
            let users = users
                .iter()
                .map(|u| store.find_user(u).map(|i| UserRef::Id(i.id)))
                .collect::<Result<Vec<_>, _>>()
                .context("--user")?;
            let course = course
                .map(|c| store.find_course(&c).map(|c| c.id))
                .transpose()
                .context("--course")?;
            let input = ReservationInput {
                gpus: Some(gpus),
                start: Some(start.unwrap_or_else(|| jiff::Timestamp::now().to_string())),
                end: Some(end),
                deployment: Some(deployment),
                users: Some(users),
                course: Some(course),
            };
            let booked = store
                .add_reservation(&operator(), &input)
                .context("cannot book the GPUs")?;
            println!("{}", booked.id);
            eprintln!(
                "llp-k8s: booked {} from {} until {} in {}",
                booked.gpus.iter().map(|g| g.slug()).collect::<Vec<_>>().join(", "),
                readable(booked.start),
                readable(booked.end),
                db.display()
            );
            Ok(Outcome::Success)
        }
        ReservationsCommand::List { db } => {
            let store = open(&db)?;
            println!("ID\tGPUS\tSTART\tEND\tDEPLOYMENT\tUSERS");
            for r in store.reservations(&operator())? {
                let names: Vec<String> = r
                    .users
                    .iter()
                    .map(|id| store.find_user(id).map_or_else(|_| id.clone(), |u| u.name))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.id,
                    r.gpus.iter().map(|g| g.slug()).collect::<Vec<_>>().join(","),
                    r.start,
                    r.end,
                    r.deployment.as_deref().unwrap_or("(any)"),
                    names.join(",")
                );
            }
            Ok(Outcome::Success)
        }
        ReservationsCommand::Remove { id, db } => {
            open(&db)?
                .remove_reservation(&operator(), &id)
                .with_context(|| format!("cannot cancel booking {id}"))?;
            eprintln!("llp-k8s: cancelled booking {id}");
            Ok(Outcome::Success)
        }
    }
}
