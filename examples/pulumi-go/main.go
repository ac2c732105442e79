// Command berth-example is a Pulumi program (runtime: go) that deploys a
// deployment behind a NodePort service on a berth cluster; see README.md
// and package berthexample.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/berth-io/berth/examples/pulumi-go/berthexample"
)

func main() {
	pulumi.Run(berthexample.Program)
}
