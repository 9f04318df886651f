/**
 * A small, strict-enough XML reader for osinfo-db's files: elements, attributes, text, entity and
 * character references; comments, processing instructions, CDATA and the doctype are handled.
 * It is not a general XML parser (no DTD entities, no namespaces beyond keeping `xml:lang` as a
 * plain attribute name), which osinfo-db does not need. Malformed input throws XmlError.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  /** Concatenated text directly inside this element. */
  text: string;
}

export class XmlError extends Error {
  override readonly name = 'XmlError';
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    const named = NAMED_ENTITIES[ref];
    if (named === undefined) throw new XmlError(`unknown entity ${whole}`);
    return named;
  });
}

const ATTRIBUTE = /([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
const NAME = /^[A-Za-z_][\w:.-]*/;

/**
 * Parses a document and returns its root. Scans with indexOf rather than one regular expression
 * of alternatives: loading osinfo-db parses about 2 MB, and this is several times faster.
 */
export interface ParseXmlOptions {
  /**
   * Which elements to build, given the names of their ancestors (outermost first) and their own
   * name. Elements refused here, and everything inside them, are scanned over without being
   * built, which is most of the cost of a large document. Default: every element.
   */
  keep?: (ancestors: readonly string[], name: string, attributes: Readonly<Record<string, string>>) => boolean;
}

export function parseXml(document: string, options: ParseXmlOptions = {}): XmlElement {
  const keep = options.keep;
  const path: string[] = [];
  const root: XmlElement = { name: '#document', attributes: {}, children: [], text: '' };
  const stack: XmlElement[] = [root];
  let current = root;
  /** Depth inside an element being skipped (a localized one), 0 when not skipping. */
  let skipping = 0;
  let i = 0;
  const length = document.length;
  const fail = (why: string): never => {
    throw new XmlError(`${why} at offset ${i}`);
  };
  while (i < length) {
    const lt = document.indexOf('<', i);
    if (lt !== i) {
      const end = lt === -1 ? length : lt;
      if (skipping === 0) current.text += decodeEntities(document.slice(i, end));
      i = end;
      continue;
    }
    const next = document.charCodeAt(i + 1);
    if (next === 33 /* ! */) {
      if (document.startsWith('<!--', i)) {
        const end = document.indexOf('-->', i + 4);
        if (end === -1) fail('unterminated comment');
        i = end + 3;
      } else if (document.startsWith('<![CDATA[', i)) {
        const end = document.indexOf(']]>', i + 9);
        if (end === -1) fail('unterminated CDATA section');
        if (skipping === 0) current.text += document.slice(i + 9, end);
        i = end + 3;
      } else {
        const end = document.indexOf('>', i);
        if (end === -1) fail('unterminated declaration');
        i = end + 1;
      }
      continue;
    }
    if (next === 63 /* ? */) {
      const end = document.indexOf('?>', i + 2);
      if (end === -1) fail('unterminated processing instruction');
      i = end + 2;
      continue;
    }
    const end = document.indexOf('>', i);
    if (end === -1) fail('unterminated tag');
    if (next === 47 /* / */) {
      if (skipping > 0) {
        skipping -= 1;
      } else {
        const name = document.slice(i + 2, end).trim();
        if (current.name !== name) fail(`</${name}> closes <${current.name}>`);
        stack.pop();
        path.pop();
        current = stack[stack.length - 1] as XmlElement;
      }
      i = end + 1;
      continue;
    }
    const selfClosing = document.charCodeAt(end - 1) === 47;
    if (skipping > 0) {
      // Inside a skipped element only the nesting depth matters.
      if (!selfClosing) skipping += 1;
      i = end + 1;
      continue;
    }
    const inner = document.slice(i + 1, selfClosing ? end - 1 : end);
    const nameMatch = NAME.exec(inner);
    if (!nameMatch) fail('malformed tag');
    i = end + 1;
    const name = (nameMatch as RegExpExecArray)[0];
    const attributes: Record<string, string> = {};
    if (inner.length > name.length) {
      ATTRIBUTE.lastIndex = name.length;
      for (let a = ATTRIBUTE.exec(inner); a !== null; a = ATTRIBUTE.exec(inner)) {
        attributes[a[1] as string] = decodeEntities(a[2] ?? a[3] ?? '');
      }
    }
    if (keep && !keep(path, name, attributes)) {
      if (!selfClosing) skipping = 1;
      continue;
    }
    const element: XmlElement = { name, attributes, children: [], text: '' };
    current.children.push(element);
    if (!selfClosing) {
      stack.push(element);
      path.push(name);
      current = element;
    }
  }
  if (stack.length !== 1) throw new XmlError(`<${current.name}> is never closed`);
  return root;
}

/** Direct children named `name`. */
export function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((child) => child.name === name);
}

/** Trimmed text of the first direct child named `name` that has no xml:lang, or null. */
export function childText(element: XmlElement, name: string): string | null {
  const child = element.children.find((c) => c.name === name && c.attributes['xml:lang'] === undefined);
  return child ? child.text.trim() : null;
}
