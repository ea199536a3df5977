use crate::cli::Options;
use crate::secrets::StoredSecrets;
use crate::settings;

/// Opens every service database, which applies its migrations.
pub async fn run(options: &Options, stored: &StoredSecrets) -> anyhow::Result<()> {
    let storage = settings::storage(options, stored)?;
    let store = settings::store(options);
    let databases = [
        users::UsersService::open_db(&storage, store).await?.db,
        catalog::CatalogService::open_db(&storage, store).await?.db,
        inventory::InventoryService::open_db(&storage, store)
            .await?
            .db,
        orders::OrdersService::open_db(&storage, store).await?.db,
        payments::PaymentsService::open_db(&storage, store)
            .await?
            .db,
    ];
    for db in databases {
        println!("{}: migrated", db.schema());
        db.close().await;
    }
    Ok(())
}
