//! The engagement lifecycle's tables: parties, engagements, audits and their findings, corrective
//! actions, decisions, certificates, the append-only history and the deadlines.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 13] = [
    "deadlines",
    "engagement_history",
    "certificates",
    "certification_decisions",
    "corrective_actions",
    "findings",
    "soa_entries",
    "documents",
    "audits",
    "proposals",
    "engagements",
    "certification_bodies",
    "organizations",
];

/// A foreign key from `table.column` to `target.id`.
fn references(table: &'static str, column: &'static str, target: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}_{column}")).from(table, column).to(target, "id").to_owned()
}

/// An index on `columns` of `table`, named after them.
fn index(table: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let prefix = if unique { "uq" } else { "ix" };
    let mut statement = Index::create();
    statement.name(format!("{prefix}_{table}_{}", columns.join("_"))).table(table);
    for column in columns {
        statement.col(*column);
    }
    if unique {
        statement.unique();
    }
    statement.to_owned()
}

/// A table whose rows belong to one engagement.
fn engagement_table(table: &'static str) -> TableCreateStatement {
    Table::create()
        .table(table)
        .col(pk_uuid("id"))
        .col(uuid("engagement_id"))
        .foreign_key(&mut references(table, "engagement_id", "engagements"))
        .to_owned()
}

fn created_and_updated(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table.col(timestamp_with_time_zone("created_at")).col(timestamp_with_time_zone("updated_at"))
}

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut tables = vec![
            created_and_updated(
                Table::create()
                    .table("organizations")
                    .col(pk_uuid("id"))
                    .col(string("legal_name"))
                    .col(text("isms_scope"))
                    .col(integer("persons"))
                    .col(json("sites"))
                    .col(boolean("accepts_unaccredited_cb"))
                    .col(string("isms_manager_email"))
                    .col(string("executive_email"))
                    .col(integer("version")),
            )
            .to_owned(),
            created_and_updated(
                Table::create()
                    .table("certification_bodies")
                    .col(pk_uuid("id"))
                    .col(string("name"))
                    .col(boolean("accredited"))
                    .col(string_null("accreditation_body"))
                    .col(date_null("accreditation_expires_on"))
                    .col(string("coordinator_email"))
                    .col(integer("version")),
            )
            .to_owned(),
            created_and_updated(
                Table::create()
                    .table("engagements")
                    .col(pk_uuid("id"))
                    .col(uuid("organization_id"))
                    .col(uuid_null("certification_body_id"))
                    .col(string("standard"))
                    .col(string("state"))
                    .col(string("manager_email"))
                    .col(date_null("engagement_letter_signed_on"))
                    .col(date_null("stage1_ready_on"))
                    .col(date_null("stage2_last_day"))
                    .col(date_null("suspended_on"))
                    .col(date_null("expired_on"))
                    .col(integer("version"))
                    .foreign_key(&mut references("engagements", "organization_id", "organizations"))
                    .foreign_key(&mut references("engagements", "certification_body_id", "certification_bodies")),
            )
            .to_owned(),
            engagement_table("proposals")
                .col(uuid("certification_body_id"))
                .col(big_integer("price_minor"))
                .col(string("currency"))
                .col(double("audit_days"))
                .col(date_null("proposed_start_on"))
                .col(string("status"))
                .col(text_null("notes"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut references("proposals", "certification_body_id", "certification_bodies"))
                .to_owned(),
            created_and_updated(
                engagement_table("audits")
                    .col(string("kind"))
                    .col(date("first_day"))
                    .col(date("last_day"))
                    .col(string("lead_auditor"))
                    .col(json("audit_team"))
                    .col(string_null("stage1_outcome"))
                    .col(json("gaps"))
                    .col(timestamp_with_time_zone_null("completed_at")),
            )
            .to_owned(),
            engagement_table("documents")
                .col(string("kind"))
                .col(text("reference"))
                .col(timestamp_with_time_zone("registered_at"))
                .to_owned(),
            Table::create()
                .table("soa_entries")
                .col(uuid("engagement_id"))
                .col(string("control"))
                .col(boolean("applicable"))
                .col(text_null("justification"))
                .primary_key(Index::create().col("engagement_id").col("control"))
                .foreign_key(&mut references("soa_entries", "engagement_id", "engagements"))
                .to_owned(),
            engagement_table("findings")
                .col(uuid("audit_id"))
                .col(string("grade"))
                .col(string("reference"))
                .col(text("description"))
                .col(string("status"))
                .col(string("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .foreign_key(&mut references("findings", "audit_id", "audits"))
                .to_owned(),
            created_and_updated(
                engagement_table("corrective_actions")
                    .col(uuid("finding_id"))
                    .col(text("root_cause"))
                    .col(text("correction"))
                    .col(text("corrective_action"))
                    .col(string("owner_email"))
                    .col(date("due_on"))
                    .col(json("evidence"))
                    .col(string("verification"))
                    .col(text_null("verification_note"))
                    .col(string_null("verified_by"))
                    .col(timestamp_with_time_zone_null("verified_at"))
                    .col(integer("version"))
                    .foreign_key(&mut references("corrective_actions", "finding_id", "findings")),
            )
            .to_owned(),
            engagement_table("certification_decisions")
                .col(string("outcome"))
                .col(string("decided_by"))
                .col(date("decided_on"))
                .col(text_null("reason"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
            created_and_updated(
                engagement_table("certificates")
                    .col(string("number"))
                    .col(text("scope"))
                    .col(string("standard"))
                    .col(date("issued_on"))
                    .col(date("decision_on"))
                    .col(date("expires_on"))
                    .col(string("status"))
                    .col(integer("surveillances_completed")),
            )
            .to_owned(),
            engagement_table("engagement_history")
                .col(string("action"))
                .col(string_null("from_state"))
                .col(string_null("to_state"))
                .col(string("actor"))
                .col(text_null("reason"))
                .col(json("evidence"))
                .col(uuid_null("subject_id"))
                .col(timestamp_with_time_zone("occurred_at"))
                .to_owned(),
            engagement_table("deadlines")
                .col(string("kind"))
                .col(uuid_null("subject_id"))
                .col(date("due_on"))
                .col(string("owner"))
                .col(string("owner_email"))
                .col(string("status"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .to_owned(),
        ];
        for table in tables.drain(..) {
            manager.create_table(table).await?;
        }
        let indexes = [
            index("engagements", &["state", "id"], false),
            index("engagements", &["certification_body_id", "id"], false),
            index("engagements", &["organization_id", "id"], false),
            index("proposals", &["engagement_id"], false),
            index("audits", &["engagement_id"], false),
            index("documents", &["engagement_id", "kind"], true),
            index("findings", &["engagement_id"], false),
            index("corrective_actions", &["finding_id"], true),
            index("corrective_actions", &["engagement_id"], false),
            index("certification_decisions", &["engagement_id"], false),
            index("certificates", &["number"], true),
            index("certificates", &["engagement_id"], true),
            index("engagement_history", &["engagement_id", "occurred_at"], false),
            index("deadlines", &["status", "due_on"], false),
            index("deadlines", &["engagement_id", "status"], false),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
