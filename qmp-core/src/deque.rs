//! Order-keeping removal from the fixed-capacity deques the engine uses.

use heapless::Deque;

/// Removes the element at `index`, keeping the others in order. O(1) at
/// the front, where replies (which mostly come in order) find theirs.
pub(crate) fn remove_at<T, const N: usize>(deque: &mut Deque<T, N>, index: usize) -> Option<T> {
    if index >= deque.len() {
        return None;
    }
    for j in (1..=index).rev() {
        deque.swap(j, j - 1);
    }
    deque.pop_front()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order() {
        let mut d = Deque::<u8, 5>::new();
        for i in 0..5 {
            d.push_back(i).unwrap();
        }
        assert_eq!(remove_at(&mut d, 2), Some(2));
        assert_eq!(remove_at(&mut d, 0), Some(0));
        assert_eq!(remove_at(&mut d, 7), None);
        assert!(d.iter().copied().eq([1, 3, 4]));
    }
}
