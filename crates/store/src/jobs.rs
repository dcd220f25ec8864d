//! Job rows (issue 4): enqueue (also inside another write's transaction), claim, complete, fail, reclaim.
