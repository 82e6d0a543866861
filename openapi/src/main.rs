//! Prints certflow's OpenAPI document: `cargo run -p openapi > openapi/openapi.json`.

fn main() -> Result<(), serde_json::Error> {
    println!("{}", serde_json::to_string_pretty(&api::routes::document())?);
    Ok(())
}
