use idfed_client::{Client, CredentialsRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let idfed = Client::builder(&std::env::var("IDFED_SERVER")?)
        .bearer(std::env::var("IDFED_API_KEY")?)
        .build()?;
    let request = CredentialsRequest::default();
    let c = idfed.credentials("deploy-prod", &request).await?;
    println!("{} until {}", c.access_key_id, c.expiration);
    Ok(())
}
