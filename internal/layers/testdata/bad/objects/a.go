package objects

import _ "github.com/strata-os/strata/repo"
