//! `k8rs images`: the node's image store from the command line (import archives, list, remove).

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Import image archives: OCI archives / OCI layout tars and `docker save` tars (optionally gzipped).
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the images on this node.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an image reference (the image goes with its last reference).
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
pub struct StoreArgs {
    /// The node's data directory (images live in DATA_DIR/agent/image-store).
    #[arg(long, env = "K8RS_DATA_DIR", default_value = "/var/lib/k8rs")]
    data_dir: PathBuf,
}

pub async fn run(command: ImagesCommand) -> anyhow::Result<()> {
    match command {
        ImagesCommand::Import { files, store } => {
            let images = crate::agent::image_store(&store.data_dir, None)?;
            for file in files {
                anyhow::ensure!(file.is_file(), "{}: no such file", file.display());
                let imported = images.import(&file).await.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                for image in imported {
                    let names =
                        if image.repo_tags.is_empty() { vec![image.id.clone()] } else { image.repo_tags.clone() };
                    for name in names {
                        println!("imported {name} ({})", short_id(&image.id));
                    }
                }
            }
        }
        ImagesCommand::List { store } => {
            let images = crate::agent::image_store(&store.data_dir, None)?;
            let mut rows = vec![["IMAGE".to_string(), "TAG".into(), "IMAGE ID".into(), "SIZE".into()]];
            for image in images.list().await? {
                let tags = if image.repo_tags.is_empty() {
                    vec!["<none>:<none>".to_string()]
                } else {
                    image.repo_tags.clone()
                };
                for tag in tags {
                    let (name, tag) =
                        tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')).unwrap_or((&tag, "<none>"));
                    rows.push([name.to_string(), tag.to_string(), short_id(&image.id), human_size(image.size)]);
                }
            }
            let widths: Vec<usize> = (0..4).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
            for row in rows {
                let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
        ImagesCommand::Rm { references, store } => {
            let images = crate::agent::image_store(&store.data_dir, None)?;
            for reference in references {
                images.remove(&reference).await.map_err(|e| anyhow::anyhow!("{reference}: {e}"))?;
                println!("deleted {reference}");
            }
        }
    }
    Ok(())
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(13).collect()
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < units.len() {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.1}{}", units[unit])
}
