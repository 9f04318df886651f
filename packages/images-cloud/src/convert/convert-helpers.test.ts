import { describe, expect, it } from 'vitest';
import { compressionOfHead } from './compression.js';
import { claimedFormatOfName, diskDestination, parseConvertProgress } from './converter.js';
import { assertSelfContained } from './headers.js';
import { allocationUnitBytes, parseOvf, safeEntryName } from './ova.js';

describe('compressionOfHead', () => {
  it('reads each format from its magic bytes, whatever the name', () => {
    expect(compressionOfHead(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]))).toBe('xz');
    expect(compressionOfHead(Buffer.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(compressionOfHead(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(compressionOfHead(Buffer.from('BZh9'))).toBe('bzip2');
    expect(compressionOfHead(Buffer.from('BZhx'))).toBeNull();
    expect(compressionOfHead(Buffer.from('QFI\xfb', 'latin1'))).toBeNull();
    expect(compressionOfHead(Buffer.alloc(0))).toBeNull();
  });
});

describe('claimedFormatOfName', () => {
  it('maps extensions to qemu-img names, through a compression suffix', () => {
    expect(claimedFormatOfName('/x/disk.vhd.xz')).toBe('vpc');
    expect(claimedFormatOfName('disk.VMDK')).toBe('vmdk');
    expect(claimedFormatOfName('disk.qcow2.zst')).toBe('qcow2');
    expect(claimedFormatOfName('disk.img')).toBeNull();
    expect(claimedFormatOfName('.vmdk')).toBeNull();
  });
});

describe('parseConvertProgress', () => {
  it('takes the last figure of -p output', () => {
    expect(parseConvertProgress('    (0.00/100%)\r    (41.50/100%)\r')).toBe(41.5);
    expect(parseConvertProgress('nothing yet')).toBeNull();
  });
});

describe('diskDestination', () => {
  it('numbers disks after the first', () => {
    expect(diskDestination('/p/images/app.qcow2', 0)).toBe('/p/images/app.qcow2');
    expect(diskDestination('/p/images/app.qcow2', 2)).toBe('/p/images/app-disk3.qcow2');
    expect(diskDestination('/p/images.d/app', 1)).toBe('/p/images.d/app-disk2');
  });
});

describe('assertSelfContained', () => {
  it('refuses a qcow2 header with a backing file offset or the data-file feature bit', () => {
    const header = Buffer.alloc(104);
    header.write('QFI\xfb', 0, 'latin1');
    header.writeUInt32BE(3, 4);
    expect(() => assertSelfContained(header, 'a')).not.toThrow();
    header.writeBigUInt64BE(4n, 72);
    expect(() => assertSelfContained(header, 'a')).toThrow(expect.objectContaining({ code: 'IMAGE_UNSAFE' }));
    header.writeBigUInt64BE(0n, 72);
    header.writeBigUInt64BE(512n, 8);
    expect(() => assertSelfContained(header, 'a')).toThrow(/backing file/);
  });

  it('refuses any VMDK text descriptor', () => {
    const text = Buffer.from('# Disk DescriptorFile\nversion=1\ncreateType="twoGbMaxExtentSparse"\n');
    expect(() => assertSelfContained(text, 'a')).toThrow(/twoGbMaxExtentSparse/);
  });
});

describe('safeEntryName', () => {
  it('allows plain names (with ./) and refuses the rest', () => {
    expect(safeEntryName('./disk.vmdk')).toBe('disk.vmdk');
    for (const bad of ['/etc/passwd', '../x.ovf', 'a/../../b', 'dir/disk.vmdk', '', './']) {
      expect(() => safeEntryName(bad)).toThrow(expect.objectContaining({ code: 'OVA_INVALID' }));
    }
  });
});

describe('parseOvf', () => {
  it('reads VirtualBox-style hardware, memory in other units, and skips blank disks', () => {
    const facts = parseOvf(`<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References><File ovf:href="vm-disk001.vmdk" ovf:id="file1"/></References>
  <DiskSection>
    <Disk ovf:capacity="10737418240" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="blank"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <VirtualHardwareSection>
      <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
    </VirtualHardwareSection>
    <vbox:Machine><Hardware><Firmware type="EFI"/></Hardware></vbox:Machine>
  </VirtualSystem>
</Envelope>`);
    expect(facts).toEqual({
      name: 'vm',
      cpuCount: 4,
      memoryMiB: 2048,
      firmware: 'uefi',
      disks: [{ diskId: 'vmdisk1', fileName: 'vm-disk001.vmdk', capacityBytes: 10737418240 }],
    });
  });

  it('refuses a descriptor that is not an OVF, names no disk, or names a path', () => {
    expect(() => parseOvf('<html/>')).toThrow(/no Envelope/);
    expect(() => parseOvf('<Envelope><DiskSection/></Envelope>')).toThrow(/no disk files/);
    expect(() =>
      parseOvf(
        '<Envelope><References><File id="f" href="../../etc/shadow"/></References><DiskSection><Disk diskId="d" fileRef="f"/></DiskSection></Envelope>',
      ),
    ).toThrow(/unsafe path/);
    expect(() => parseOvf('<Envelope><oops></Envelope>')).toThrow(expect.objectContaining({ code: 'OVA_INVALID' }));
  });

  it('reads allocation units', () => {
    expect(allocationUnitBytes('byte * 2^20')).toBe(1024 ** 2);
    expect(allocationUnitBytes('GigaBytes')).toBe(1024 ** 3);
    expect(allocationUnitBytes('hertz * 10^6')).toBeNull();
  });
});
