// Command pulumi-tfgen-berth generates berth's Pulumi schema, bridge
// metadata and SDKs from the bridge mapping:
//
//	pulumi-tfgen-berth schema --out provider/bridge/cmd/pulumi-resource-berth
//	pulumi-tfgen-berth go --out sdk/go/
//
// It fails on any warning from the generator. scripts/generate-sdk.sh runs
// both commands.
package main

import (
	"os"

	"github.com/berth-io/berth/provider/bridge"
	"github.com/berth-io/berth/provider/bridge/generate"
)

func main() {
	generate.Main(bridge.PackageName, bridge.Provider(), os.Stdout, os.Stderr)
}
