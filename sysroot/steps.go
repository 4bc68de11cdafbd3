package sysroot

// Steps lists the failpoints this package passes, in the order a deploy
// reaches them (fsutil.CheckFailpoint("sysroot:STEP") runs before each
// durable step; the fsutil helpers add their own "write:", "rename:",
// "syncdir:" and "syncfs:" steps inside). A fault-injection test can fail
// or kill the process at each one; cmd/strata's STRATA_CRASH_AT=STEP
// SIGKILLs itself there (built with -tags strata_crashtest only). docs/sysroot.md describes what is on disk after
// each.
var Steps = []string{
	// admin init-fs, os-init
	"sysroot:init-fs",
	"sysroot:os-init",
	// cleanup (also at the start of deploy and after every switch)
	"sysroot:cleanup-bootversions",
	"sysroot:cleanup-deployments",
	"sysroot:cleanup-bootdirs",
	"sysroot:refs",
	"sysroot:cleanup-refs",
	// writing a deployment directory
	"sysroot:checkout",
	"sysroot:etc",
	"sysroot:var-seed",
	"sysroot:etc-merge",
	"sysroot:syncfs-deployment",
	"sysroot:publish-deployment",
	"sysroot:origin",
	"sysroot:seal",
	// staging (deploy --stage) and finalize-staged
	"sysroot:stage-state",
	"sysroot:unstage",
	// the switch to a new boot version
	"sysroot:boot-files",
	"sysroot:entries",
	"sysroot:bootlinks",
	"sysroot:syncfs-boot",
	"sysroot:swap",
	// after the switch
	"sysroot:prune",
	// admin boot-complete
	"sysroot:boot-complete",
}
