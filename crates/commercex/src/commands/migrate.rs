use crate::settings::Databases;

/// Opens every service database, which applies its migrations.
pub async fn run(databases: &Databases) -> anyhow::Result<()> {
    for (_, db) in databases.open_every_service().await? {
        println!("{}: migrated", db.schema());
        db.close().await;
    }
    Ok(())
}
