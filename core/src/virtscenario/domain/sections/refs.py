"""Documentation every section cites."""

FD = "https://libvirt.org/formatdomain.html"
KBASE = "https://libvirt.org/kbase"
QEMU_IMG = "https://www.qemu.org/docs/master/tools/qemu-img.html"
KERNEL_MM = "https://docs.kernel.org/admin-guide/mm"
VIRTINST = "https://github.com/virt-manager/virt-manager/blob/v4.1.0/virtinst"
VIRTINST5 = "https://github.com/virt-manager/virt-manager/blob/v5.0.0/virtinst"
#: libosinfo's generic "linux2022" guest inherits these resources (minimum 1 CPU, 2 GiB RAM, 10 GiB disk).
OSINFO_LINUX = "https://gitlab.com/libosinfo/osinfo-db/-/blob/main/data/os/ubuntu.com/ubuntu-22.04.xml.in"
