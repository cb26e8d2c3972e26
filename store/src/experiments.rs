//! Experiments: one row per experiment name, pointing at the file it was declared in.

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn upsert_creates_then_updates() {
        let store = Store::open_in_memory().await.unwrap();
        let a = store
            .upsert_experiment("ablation", "exp/ablation.toml", "h1")
            .await
            .unwrap();
        let b = store
            .upsert_experiment("ablation", "exp/moved.toml", "h2")
            .await
            .unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(b.path, "exp/moved.toml");
        assert_eq!(b.content_hash, "h2");
        assert_eq!(b.created_ms, a.created_ms);
        let all = store.experiments().await.unwrap();
        assert_eq!(all, vec![b.clone()]);
        assert_eq!(store.experiment_by_name("ablation").await.unwrap(), Some(b));
        assert_eq!(store.experiment_by_name("other").await.unwrap(), None);
    }
}
