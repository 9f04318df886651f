/**
 * Other spellings of one request path: the forms a router, a proxy or a string test may read
 * differently from each other. A route's check must hold whichever of them reaches it.
 */

const encode = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

export interface Spelling {
  label: string;
  path: string;
}

/** `path` (beginning with `prefix`, e.g. /api/v1/pools/x) and its other spellings. */
export function spellingsOf(path: string, prefix: string): Spelling[] {
  if (!path.startsWith(prefix)) throw new Error(`${path} is not under ${prefix}`);
  const rest = path.slice(prefix.length); // '/pools/x' or ''
  const segments = prefix.split('/').filter(Boolean); // ['api', 'v1']
  const join = (parts: string[], tail = rest) => `/${parts.join('/')}${tail}`;
  const out: Spelling[] = [{ label: 'literal', path }];

  // One character of the prefix percent-encoded at a time, then all of them, in both hex cases.
  segments.forEach((segment, s) => {
    for (let i = 0; i < segment.length; i++) {
      const encoded = segment.slice(0, i) + encode(segment[i] as string) + segment.slice(i + 1);
      out.push({ label: `encoded ${segment[i]}`, path: join(segments.map((x, j) => (j === s ? encoded : x))) });
    }
  });
  out.push({ label: 'all encoded', path: join(segments.map((x) => [...x].map(encode).join(''))) });
  out.push({
    label: 'all encoded, upper-case hex',
    path: join(segments.map((x) => [...x].map((c) => encode(c).toUpperCase()).join(''))),
  });
  out.push({
    label: 'double-encoded',
    path: join([`%25${encode(segments[0]?.[0] ?? 'a').slice(1)}${(segments[0] ?? '').slice(1)}`, ...segments.slice(1)]),
  });
  out.push({ label: 'encoded slash', path: `/${segments.join('%2F')}${rest}` });
  out.push({ label: 'encoded slash, lower-case', path: `/${segments.join('%2f')}${rest}` });
  if (rest.length > 1) {
    out.push({
      label: 'encoded first letter after the prefix',
      path: `${prefix}/${encode(rest[1] as string)}${rest.slice(2)}`,
    });
    out.push({ label: 'encoded slash after the prefix', path: `${prefix}%2F${rest.slice(1)}` });
  }

  // Case.
  out.push({ label: 'upper case', path: join(segments.map((x) => x.toUpperCase())) });
  out.push({ label: 'capitalised', path: join(segments.map((x) => x[0]?.toUpperCase() + x.slice(1))) });
  out.push({ label: 'upper-case route', path: `${prefix}${rest.toUpperCase()}` });

  // Slashes and dot segments.
  out.push({ label: 'leading //', path: `/${path}` });
  out.push({ label: '// inside the prefix', path: `/${segments.join('//')}${rest}` });
  out.push({ label: '// after the prefix', path: `${prefix}/${rest}` });
  out.push({ label: 'leading /./', path: `/.${path}` });
  out.push({ label: '/./ inside the prefix', path: `/${segments.join('/./')}${rest}` });
  out.push({ label: '/x/../ before the prefix', path: `/x/..${path}` });
  out.push({ label: 'encoded dot segment', path: `/%2e${path}` });
  out.push({ label: 'backslash', path: `/${segments.join('\\')}${rest}` });
  out.push({ label: 'trailing slash', path: `${path}/` });
  out.push({ label: 'trailing /.', path: `${path}/.` });

  // Matrix (`;`) parameters, which some servers strip before routing.
  out.push({ label: ';param in the prefix', path: `/${segments[0]};x=1/${segments.slice(1).join('/')}${rest}` });
  out.push({ label: ';param after the prefix', path: `${prefix};x=1${rest}` });
  out.push({ label: ';param at the end', path: `${path};x=1` });
  out.push({ label: 'empty query', path: `${path}?` });
  return out;
}
