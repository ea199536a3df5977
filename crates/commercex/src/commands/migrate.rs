use crate::cli::Options;
use crate::secrets::StoredSecrets;
use crate::settings;

/// Opens every service database, which applies its migrations.
pub async fn run(options: &Options, stored: &StoredSecrets) -> anyhow::Result<()> {
    let storage = settings::storage(options, stored)?;
    let pool = settings::pool(options);
    let databases = [
        users::UsersService::open_db(&storage, pool).await?.db,
        catalog::CatalogService::open_db(&storage, pool).await?.db,
        inventory::InventoryService::open_db(&storage, pool)
            .await?
            .db,
        orders::OrdersService::open_db(&storage, pool).await?.db,
        payments::PaymentsService::open_db(&storage, pool).await?.db,
        crate::app::open_bus_db(&storage, pool).await?,
    ];
    for db in databases {
        println!("{}: migrated", db.schema());
        db.close().await;
    }
    Ok(())
}
