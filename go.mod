module github.com/strata-os/strata

go 1.26
