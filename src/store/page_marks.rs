//! Where earlier pages of an unfiltered list ended, so that a page by index
//! (`startIndex`) can start from the nearest one instead of stepping over
//! every resource before it.
//!
//! A b-tree holds no counts to jump an offset by: a page at offset 500,000
//! steps over 500,000 index entries (at 1,000,000 users, 29 pages/s against
//! ~1,400 by cursor). A clean-up job that pages through a directory by
//! `startIndex` pays that for every page, so a whole pass costs the square
//! of the directory's size. Each page that ends before the list does leaves
//! a mark here, "the resources from offset N on follow this position", and a
//! later page at N or beyond seeks to the nearest mark and steps only the
//! rest: the next page of a pass steps over nothing.
//!
//! A mark is only right for the list it was taken on. Each one carries the
//! list's `changes` (migration 10: the triggers that keep the count add one
//! for every create and delete), read with the count before the page, and
//! is used only while the list still has that number; so it holds on every
//! instance that shares the database. A write that lands between that read
//! and the page itself leaves the page as a page of the list before it, as
//! any page of a list that changes while it is read may be.
//!
//! Marks take memory, so a list keeps at most [`MARKS_PER_LIST`], thinned
//! evenly when there are more, and at most [`LISTS`] lists keep marks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::query::Position;
use crate::scim::ResourceKind;

/// Marks kept for one list: at 1,000,000 users, one every ~250 resources
/// once pages have been read all over it (~0.5 MB).
pub const MARKS_PER_LIST: usize = 4096;
/// Lists (tenant and type) that keep marks at a time.
pub const LISTS: usize = 256;

#[derive(Default)]
pub struct PageMarks {
    lists: Mutex<HashMap<(String, ResourceKind), ListMarks>>,
}

struct ListMarks {
    /// The list's `changes` the marks were taken at.
    changes: i64,
    /// Offset → the position of the resource just before it.
    marks: BTreeMap<u64, Position>,
}

impl PageMarks {
    /// The lists' marks, locked. No mark is ever labelled with a `changes`
    /// it was not taken at (old marks go before the label moves), so what a
    /// panic left behind under the lock is still right to use.
    fn lists(&self) -> MutexGuard<'_, HashMap<(String, ResourceKind), ListMarks>> {
        self.lists.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The mark at or nearest before `offset`, if the list has not changed
    /// since it was left: `(its offset, the position the page starts after)`.
    pub fn nearest(&self, tenant_id: &str, kind: ResourceKind, changes: i64, offset: u64) -> Option<(u64, Position)> {
        let lists = self.lists();
        let list = lists.get(&(tenant_id.to_string(), kind))?;
        if list.changes != changes {
            return None;
        }
        let (&at, position) = list.marks.range(..=offset).next_back()?;
        Some((at, position.clone()))
    }

    /// The offsets a list has marks at, in order (for tests and diagnostics).
    pub fn offsets(&self, tenant_id: &str, kind: ResourceKind) -> Vec<u64> {
        let lists = self.lists();
        lists
            .get(&(tenant_id.to_string(), kind))
            .map(|list| list.marks.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Remembers that the resources from `offset` on follow `position`, in
    /// the list as it was at `changes`. Marks of another `changes` go.
    pub fn leave(&self, tenant_id: &str, kind: ResourceKind, changes: i64, offset: u64, position: Position) {
        let mut lists = self.lists();
        let key = (tenant_id.to_string(), kind);
        if !lists.contains_key(&key) && lists.len() >= LISTS {
            // Rare (hundreds of tenants paging by index at once): start over
            // rather than keep usage order.
            lists.clear();
        }
        let list = lists.entry(key).or_insert_with(|| ListMarks {
            changes,
            marks: BTreeMap::new(),
        });
        if list.changes != changes {
            // A mark of a newer list replaces the old ones; one of an older
            // list (a page that read the count before a write) is dropped.
            if changes < list.changes {
                return;
            }
            list.marks.clear();
            list.changes = changes;
        }
        list.marks.insert(offset, position);
        if list.marks.len() > MARKS_PER_LIST {
            // Every other mark goes, the new one stays: the marks still
            // cover the whole list, only more thinly, and the next page of
            // a pass still starts where this one ended.
            let thinned: Vec<u64> = list
                .marks
                .keys()
                .copied()
                .enumerate()
                .filter(|&(i, at)| i % 2 == 1 && at != offset)
                .map(|(_, at)| at)
                .collect();
            for at in thinned {
                list.marks.remove(&at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(id: &str) -> Position {
        Position {
            key: None,
            created: "2026-12-06T00:00:00.000000Z".into(),
            id: id.into(),
        }
    }

    #[test]
    fn the_nearest_mark_at_or_before_the_offset_of_the_same_list_is_found() {
        let marks = PageMarks::default();
        marks.leave("t", ResourceKind::User, 7, 100, position("a"));
        marks.leave("t", ResourceKind::User, 7, 300, position("b"));
        assert_eq!(marks.nearest("t", ResourceKind::User, 7, 99), None);
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 7, 100),
            Some((100, position("a")))
        );
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 7, 299),
            Some((100, position("a")))
        );
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 7, 5000),
            Some((300, position("b")))
        );
        // Another type, another tenant, another state of the list: nothing.
        assert_eq!(marks.nearest("t", ResourceKind::Group, 7, 5000), None);
        assert_eq!(marks.nearest("u", ResourceKind::User, 7, 5000), None);
        assert_eq!(marks.nearest("t", ResourceKind::User, 8, 5000), None);
    }

    #[test]
    fn a_changed_list_drops_its_marks_and_an_older_list_leaves_none() {
        let marks = PageMarks::default();
        marks.leave("t", ResourceKind::User, 7, 100, position("a"));
        marks.leave("t", ResourceKind::User, 9, 200, position("b"));
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 9, 150),
            None,
            "the mark of 7 is gone"
        );
        marks.leave("t", ResourceKind::User, 8, 100, position("c"));
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 9, 150),
            None,
            "8 is older than 9"
        );
        assert_eq!(
            marks.nearest("t", ResourceKind::User, 9, 250),
            Some((200, position("b")))
        );
    }

    #[test]
    fn a_full_list_is_thinned_evenly_and_keeps_the_newest_mark() {
        let marks = PageMarks::default();
        let pages = MARKS_PER_LIST as u64 + 1;
        for i in 1..=pages {
            marks.leave("t", ResourceKind::User, 1, i * 100, position(&i.to_string()));
        }
        let list = |offset| marks.nearest("t", ResourceKind::User, 1, offset).map(|(at, _)| at);
        // The pass's newest page end is kept, for its next page.
        assert_eq!(list(pages * 100), Some(pages * 100));
        // Half of the others are left, spread over the whole list.
        assert_eq!(list(100), Some(100));
        assert_eq!(list(250), Some(100), "200 went");
        assert_eq!(list(350), Some(300));
        assert_eq!(list(pages * 100 - 1), Some(pages * 100 - 200));
        let lists = marks.lists.lock().expect("lock");
        let kept = lists.values().next().expect("list").marks.len();
        assert!(kept <= MARKS_PER_LIST / 2 + 2, "{kept}");
    }
}
