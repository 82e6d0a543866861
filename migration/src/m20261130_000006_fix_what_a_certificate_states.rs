//! What a certificate states is fixed when it is granted: the organization's legal name, the
//! certification body's name and accreditation body, and the date of the first certification;
//! the certified scope comes from the engagement, set with its engagement letter. Certificates
//! granted before this migration have none of these (the public verification falls back to the
//! records they point at).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{date_null, string_null, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

const CERTIFICATE_COLUMNS: [&str; 4] =
    ["organization_name", "certification_body_name", "accreditation_body", "first_issued_on"];

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager.alter_table(Table::alter().table("engagements").add_column(text_null("scope")).to_owned()).await?;
        for column in CERTIFICATE_COLUMNS {
            let definition = if column == "first_issued_on" { date_null(column) } else { string_null(column) };
            manager.alter_table(Table::alter().table("certificates").add_column(definition).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in CERTIFICATE_COLUMNS {
            manager.alter_table(Table::alter().table("certificates").drop_column(column).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table("engagements").drop_column("scope").to_owned()).await
    }
}
