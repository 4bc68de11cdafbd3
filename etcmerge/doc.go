// Package etcmerge is OSTree's /etc three-way merge, with ostree 2022.7's
// semantics: the local changes of the old deployment (its etc compared
// with its usr/etc, the defaults it shipped with) are carried into a new
// deployment's etc (a copy of the new usr/etc). Local edits and additions
// win over the new defaults, local deletions delete, and everything left
// untouched takes the new defaults.
//
// NewPlan computes the changes and replays the merge on a model of the new
// etc, so that every merge ostree would refuse (or that would have to
// write through a symlink) is reported, naming the path, before anything
// is written; Plan.Apply then writes it. Diff is the comparison behind
// `ostree admin config-diff`, in ostree's order.
package etcmerge
