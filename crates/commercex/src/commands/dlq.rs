use anyhow::bail;
use events::dlq::{DeadLetters, DlqError};

use crate::cli::DlqCommand;
use crate::settings::Databases;

pub async fn run(databases: &Databases, command: DlqCommand) -> anyhow::Result<()> {
    // Every service database has a dead-letter table; look in all of them.
    let queues = databases
        .open_every_service()
        .await?
        .map(|(schema, db)| (schema, DeadLetters::new(db)));

    match command {
        DlqCommand::List => {
            println!(
                "{:<36}  {:<10}  {:<20}  {:<36}  {:>8}  {:<16}  ERROR",
                "ID", "SERVICE", "GROUP", "EVENT TYPE", "ATTEMPTS", "STATUS"
            );
            let mut total = 0;
            for (schema, queue) in &queues {
                for letter in queue.list_open().await? {
                    total += 1;
                    let status = serde_json::to_value(letter.status)?;
                    println!(
                        "{:<36}  {:<10}  {:<20}  {:<36}  {:>8}  {:<16}  {}",
                        letter.id,
                        schema,
                        letter.group,
                        letter.event_type,
                        letter.attempts,
                        status.as_str().unwrap_or_default(),
                        letter.error
                    );
                }
            }
            println!("{total} dead letter(s)");
        }
        DlqCommand::Show { id } => {
            let (_, letter) = find(&queues, &id).await?;
            println!("{}", serde_json::to_string_pretty(&letter.redacted())?);
        }
        DlqCommand::Replay { id } => {
            let (queue, _) = find(&queues, &id).await?;
            queue.request_replay(&id).await?;
            println!("replay of {id} requested; the running consumer handles it");
        }
        DlqCommand::Discard { id } => {
            let (queue, _) = find(&queues, &id).await?;
            queue.discard(&id).await?;
            println!("{id} discarded");
        }
    }
    Ok(())
}

async fn find<'a>(
    queues: &'a [(&str, DeadLetters)],
    id: &str,
) -> anyhow::Result<(&'a DeadLetters, events::dlq::DeadLetter)> {
    for (_, queue) in queues {
        match queue.get(id).await {
            Ok(letter) => return Ok((queue, letter)),
            Err(DlqError::NotFound(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    bail!("no dead letter with id {id}")
}
