use super::*;

fn run(indices: &[u64]) -> SeqChecker {
    let mut c = SeqChecker::new();
    for &k in indices {
        c.observe(k);
    }
    c
}

#[test]
fn in_order_run_is_clean() {
    let c = run(&[0, 1, 2, 3, 4]);
    assert_eq!((c.lost(5), c.duplicated(), c.out_of_order()), (0, 0, 0));
    assert_eq!(c.distinct(), 5);
}

#[test]
fn a_gap_is_lost() {
    let c = run(&[0, 1, 3, 4]);
    assert_eq!((c.lost(5), c.duplicated(), c.out_of_order()), (1, 0, 0));
    // The tail that never came is lost too.
    let c = run(&[0, 1, 2]);
    assert_eq!(c.lost(5), 2);
}

#[test]
fn a_duplicate_is_counted_once_per_extra_copy() {
    let mut c = SeqChecker::new();
    assert_eq!(c.observe(0), Seen::InOrder);
    assert_eq!(c.observe(1), Seen::InOrder);
    assert_eq!(c.observe(1), Seen::Duplicate);
    assert_eq!(c.observe(0), Seen::Duplicate);
    assert_eq!(c.observe(3), Seen::InOrder);
    assert_eq!(c.observe(3), Seen::Duplicate);
    assert_eq!((c.lost(4), c.duplicated(), c.out_of_order()), (1, 3, 0));
}

#[test]
fn a_reorder_is_out_of_order_but_not_lost() {
    let mut c = SeqChecker::new();
    for k in [0, 2, 3] {
        assert_eq!(c.observe(k), Seen::InOrder);
    }
    assert_eq!(c.observe(1), Seen::Reordered);
    assert_eq!((c.lost(4), c.duplicated(), c.out_of_order()), (0, 0, 1));
    assert_eq!(c.distinct(), 4);
}

#[test]
fn indices_beyond_expected_do_not_hide_losses() {
    let c = run(&[0, 5, 6]);
    assert_eq!(c.lost(3), 2);
}

#[test]
fn events_split_round_robin_over_topics() {
    assert_eq!(expected_on_topic(10, 3, 0), 4); // 0 3 6 9
    assert_eq!(expected_on_topic(10, 3, 1), 3); // 1 4 7
    assert_eq!(expected_on_topic(10, 3, 2), 3); // 2 5 8
    assert_eq!(expected_on_topic(2, 5, 4), 0);
    assert_eq!(expected_on_topic(0, 5, 0), 0);
}
