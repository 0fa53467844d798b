// Package block is the "block" backend of cluster volumes, the EBS model: a
// volume is an ext4 filesystem in an image file on storage that every host
// reaches (a SAN; in the lab, one directory shared by all hosts stands in for
// it). Only one host uses a volume at a time, and that host has it attached:
// a loop device over the image, mounted at a mountpoint that the agent hands
// to Docker.
//
// Moving a volume is therefore detach on the source (sync, unmount, release
// the loop device) and attach on the target (loop device, mount). Neither
// copies data: the bytes stay where they are on the shared storage, and what
// the kernel does is flush the dirty pages, then read the superblock, group
// descriptors and journal, none of which grows with the volume's size. So
// a move costs the same at 1 GiB as at 10 GiB, unlike the copy backend.
//
// ext4 is not a cluster filesystem: mounting one image on two hosts at once
// corrupts it. Who may attach is decided by the cluster lease, which the
// caller (the agent) holds; this package only does the local work, and
// every step is idempotent so that an agent that crashed half-way can simply
// call it again.
//
// Everything happens in the calling process: mount(2) and the loop ioctls,
// never a helper process, because the agent runs in its host's private mount
// namespace and a mount made anywhere else would be invisible to the host's
// dockerd. Loop devices, on the other hand, are global to the kernel (all
// lab hosts share one), so the package recognises the loop devices of an
// image by the backing file's device and inode, not by their names or by
// path strings.
//
// A mount namespace created while a volume is attached (a container being
// started, a lab host booting, a daemon with a private /tmp) gets a copy of
// the mount, which keeps the filesystem alive after the unmount here;
// Detach waits briefly for such a copy to go and otherwise reports the
// image as still in use rather than pretend it is free.
package block
