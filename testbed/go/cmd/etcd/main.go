// Command etcd is etcd's own server entry point, built from the pinned
// go.etcd.io/etcd/server/v3 module (its repository's main package is not a module of its own).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
