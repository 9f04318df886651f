import { type FormEvent, type ReactNode, useState } from 'react';
import { client } from '../api.js';
import { ErrorAlert, Field } from '../components.js';
import { useAction } from '../hooks.js';
import type { Pool } from '../types.js';

type TargetFormat = 'qcow2' | 'raw';
type SourceFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vpc' | 'vdi';
/** qemu-img's names, as the API takes them; vpc is VHD. */
const SOURCE_FORMATS: { value: SourceFormat; label: string }[] = [
  { value: 'vmdk', label: 'VMDK' },
  { value: 'vpc', label: 'VHD' },
  { value: 'vhdx', label: 'VHDX' },
  { value: 'vdi', label: 'VDI' },
  { value: 'qcow2', label: 'qcow2' },
  { value: 'raw', label: 'raw' },
];

/**
 * Imports a disk image (VMDK, VHD(X), VDI, raw, qcow2, compressed or in an OVA) from a URL: the
 * node downloads and converts it; the new row shows the stage and progress as live events come.
 */
export function ImageImport({
  pools,
  poolOption,
  onStarted,
}: {
  /** The pools that hold cloud images. */
  pools: Pool[];
  poolOption: (pool: Pool) => ReactNode;
  onStarted: () => void;
}) {
  const [url, setUrl] = useState('');
  const [poolId, setPoolId] = useState('');
  const [sha256, setSha256] = useState('');
  const [format, setFormat] = useState<TargetFormat>('qcow2');
  const [sourceFormat, setSourceFormat] = useState<SourceFormat | ''>('');
  const [keepOriginal, setKeepOriginal] = useState(false);
  const { busy, error, fieldErrors, run } = useAction();
  const [started, setStarted] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const chosenPool = poolId || pools[0]?.id || '';
    setStarted(null);
    const checksum = sha256.trim();
    const image = await run(() =>
      client.request('importImage', {
        body: {
          url: url.trim(),
          poolId: chosenPool,
          format,
          keepOriginal,
          sha256: checksum,
          ...(sourceFormat ? { sourceFormat } : {}),
        },
      }),
    );
    if (!image) return;
    setStarted(`Importing ${image.name} into ${pools.find((p) => p.id === chosenPool)?.name ?? chosenPool}.`);
    setUrl('');
    setSha256('');
    onStarted();
  };

  return (
    <form className="panel" onSubmit={submit} aria-labelledby="import-heading">
      <h2 id="import-heading">Import disk image</h2>
      <Field
        label="Image URL"
        error={fieldErrors.url}
        hint="VMDK, VHD, VHDX, VDI, raw, qcow2 or OVA; xz/gz/zst/bz2 too."
      >
        {(props) => (
          <input
            {...props}
            type="url"
            required
            value={url}
            placeholder="https://example.org/disk.vmdk"
            onChange={(e) => setUrl(e.target.value)}
          />
        )}
      </Field>
      <Field
        label="Into pool"
        error={fieldErrors.poolId}
        hint={pools.length === 0 ? 'No pool holds cloud images.' : undefined}
      >
        {(props) => (
          <select {...props} value={poolId || pools[0]?.id || ''} onChange={(e) => setPoolId(e.target.value)}>
            {pools.map(poolOption)}
          </select>
        )}
      </Field>
      <Field
        label="SHA-256 of the file"
        error={fieldErrors.sha256}
        hint="What sha256sum prints for the file as downloaded: the node verifies the download against it."
      >
        {(props) => (
          <input
            {...props}
            required
            value={sha256}
            spellCheck={false}
            pattern="[0-9a-fA-F]{64}"
            placeholder="64 hex digits"
            onChange={(e) => setSha256(e.target.value)}
          />
        )}
      </Field>
      <Field
        label="The file is"
        error={fieldErrors.sourceFormat}
        hint="The node checks the content against this and refuses a mismatch."
      >
        {(props) => (
          <select
            {...props}
            value={sourceFormat}
            onChange={(e) => setSourceFormat(e.target.value as SourceFormat | '')}
          >
            <option value="">Detect from its content</option>
            {SOURCE_FORMATS.map((f) => (
              <option key={f.value} value={f.value}>
                {f.label}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Convert to" error={fieldErrors.format}>
        {(props) => (
          <select {...props} value={format} onChange={(e) => setFormat(e.target.value as TargetFormat)}>
            <option value="qcow2">qcow2</option>
            <option value="raw">raw</option>
          </select>
        )}
      </Field>
      <label className="check">
        <input type="checkbox" checked={keepOriginal} onChange={(e) => setKeepOriginal(e.target.checked)} /> Keep the
        original file beside the converted one
      </label>
      <ErrorAlert error={error} title="Import refused" />
      {started && (
        <p role="status" className="ok">
          {started}
        </p>
      )}
      <button type="submit" className="primary" disabled={busy || !url || pools.length === 0}>
        {busy ? 'Starting…' : 'Import'}
      </button>
    </form>
  );
}
