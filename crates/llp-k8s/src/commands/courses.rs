//! `llp-k8s courses add|members`: courses in the embedded record source, whose collaborators
//! and members may use the GPU bookings made for the course.

use super::Outcome;
use super::reservations::operator as command_line;
use crate::cli::CoursesCommand;
use anyhow::Context;
use llp_k8s::records::embedded::{CourseInput, EmbeddedStore, People};

pub fn run(command: CoursesCommand) -> anyhow::Result<Outcome> {
    match command {
        CoursesCommand::Add { name, db } => {
            let store = EmbeddedStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
            let input = CourseInput {
                name,
                ..CourseInput::default()
            };
            let course = store
                .add_course(&command_line(), &input)
                .context("cannot create the course")?;
            println!("{}", course.id);
            Ok(Outcome::Success)
        }
        CoursesCommand::Members {
            course,
            members,
            collaborators,
            db,
        } => {
            let store = EmbeddedStore::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
            let mut course = store.find_course(&course).context("the course")?;
            for (people, names, flag) in [
                (People::Members, &members, "--member"),
                (People::Collaborators, &collaborators, "--collaborator"),
            ] {
                let ids = names
                    .iter()
                    .map(|u| store.find_user(u).map(|i| i.id))
                    .collect::<Result<Vec<_>, _>>()
                    .context(flag)?;
                if !ids.is_empty() {
                    course = store
                        .add_to_course(&command_line(), &course.id, people, &ids)
                        .context("cannot add to the course")?;
                }
            }
            println!("collaborators\t{}", course.collaborators.join(","));
            println!("members\t{}", course.members.join(","));
            Ok(Outcome::Success)
        }
    }
}
