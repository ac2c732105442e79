module github.com/berth-io/berth/tools/opentofu

go 1.26

require github.com/opentofu/opentofu v1.10.6

replace github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20250121132637-504036cd70e7
