#[theseus::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_and_join() {
    let mut handles = Vec::new();
    for i in 0..1000u64 {
        handles.push(theseus::spawn(async move { i }));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, 499500);
}

#[theseus::test]
async fn current_thread_timer() {
    let h = theseus::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        5
    });
    assert_eq!(h.await.unwrap(), 5);
}
