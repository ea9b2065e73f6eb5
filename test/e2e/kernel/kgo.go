// A static Go program (Go's runtime makes its own system calls, without
// libc): the operations t_kernel.sh asks for, one per argument pair, each
// printed as "OP ARG: ok" or "OP ARG: error".
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

func say(op, arg string, err error) {
	if err != nil {
		fmt.Printf("%s %s: %v\n", op, arg, err)
	} else {
		fmt.Printf("%s %s: ok\n", op, arg)
	}
}

func main() {
	a := os.Args[1:]
	for i := 0; i+1 < len(a); i += 2 {
		op, arg := a[i], a[i+1]
		switch op {
		case "rm":
			say(op, arg, os.Remove(arg))
		case "mv":
			say(op, arg, os.Rename(arg, a[i+2]))
			i++
		case "write":
			say(op, arg, os.WriteFile(arg, []byte("written by go\n"), 0644))
		case "overwrite":
			f, err := os.OpenFile(arg, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt([]byte("OVERWRITTEN"), 0)
				f.Close()
			}
			say(op, arg, err)
		case "truncate":
			say(op, arg, os.Truncate(arg, 0))
		case "dial":
			c, err := net.DialTimeout("tcp", arg, 2*time.Second)
			if c != nil {
				c.Close()
			}
			say(op, arg, err)
		case "exec":
			cmd := exec.Command(arg, a[i+2:]...)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			say(op, arg, cmd.Run())
			return
		default:
			fmt.Fprintf(os.Stderr, "kgo: unknown operation %s\n", op)
			os.Exit(2)
		}
	}
}
