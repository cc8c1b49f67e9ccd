// Package workflow holds what every verb's workflow is made of: a Target
// (an inventory host and the interfaces that reach it), named steps run in
// order, the Plan whose Do method is the one dry-run guard around every
// change, waiting for a unit to become ready, and reaching every host of
// an inventory (this machine, or over SSH).
//
// Each verb's workflow lives in a package below: apply (and plan), member
// (add, remove), backup (backup, restore), certs, doctor and localcluster
// (run). The command line maps flags to their options and prints their
// results; it holds no workflow of its own.
package workflow
