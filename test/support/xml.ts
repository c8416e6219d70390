/**
 * A strict little XML reader for tests that check generated SVG: it throws on anything
 * not well formed (unclosed or mismatched tags, unquoted or repeated attributes, a bare
 * `&`, text after the root) and returns the element tree. No dependency needed for that.
 */

export interface XmlElement {
  readonly name: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
}

const nameChars = /[A-Za-z0-9_:.-]/;

export function parseXml(text: string): XmlElement {
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`not well-formed XML at ${i}: ${why} (…${text.slice(Math.max(0, i - 40), i + 40)}…)`);
  };
  const checkText = (chunk: string): void => {
    if (/&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)/.test(chunk)) fail('a bare &');
    if (chunk.includes('<')) fail('a bare <');
  };
  const readName = (): string => {
    const start = i;
    while (i < text.length && nameChars.test(text[i]!)) i++;
    if (i === start) fail('expected a name');
    return text.slice(start, i);
  };
  const skipSpace = (): void => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const skipMisc = (): void => {
    for (;;) {
      skipSpace();
      if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end === -1) fail('unterminated declaration');
        i = end + 2;
      } else if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end === -1) fail('unterminated comment');
        i = end + 3;
      } else return;
    }
  };
  const readElement = (): XmlElement => {
    if (text[i] !== '<') fail('expected <');
    i++;
    const name = readName();
    const attributes: Record<string, string> = {};
    for (;;) {
      const before = i;
      skipSpace();
      if (text.startsWith('/>', i)) {
        i += 2;
        return { name, attributes, children: [] };
      }
      if (text[i] === '>') {
        i++;
        break;
      }
      if (i === before) fail('expected space before an attribute');
      const attribute = readName();
      skipSpace();
      if (text[i] !== '=') fail(`attribute ${attribute} without a value`);
      i++;
      skipSpace();
      const quote = text[i];
      if (quote !== '"' && quote !== "'") fail(`attribute ${attribute} not quoted`);
      const end = text.indexOf(quote!, i + 1);
      if (end === -1) fail('unterminated attribute value');
      const value = text.slice(i + 1, end);
      checkText(value);
      if (attribute in attributes) fail(`attribute ${attribute} repeated`);
      attributes[attribute] = value;
      i = end + 1;
    }
    const children: XmlElement[] = [];
    for (;;) {
      const next = text.indexOf('<', i);
      if (next === -1) fail(`<${name}> not closed`);
      checkText(text.slice(i, next));
      i = next;
      if (text.startsWith('</', i)) {
        i += 2;
        const closing = readName();
        if (closing !== name) fail(`</${closing}> closes <${name}>`);
        skipSpace();
        if (text[i] !== '>') fail('expected >');
        i++;
        return { name, attributes, children };
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i);
        if (end === -1) fail('unterminated comment');
        i = end + 3;
        continue;
      }
      if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i);
        if (end === -1) fail('unterminated CDATA');
        i = end + 3;
        continue;
      }
      children.push(readElement());
    }
  };
  skipMisc();
  const root = readElement();
  skipMisc();
  if (i !== text.length) fail('content after the root element');
  return root;
}

/** Every element of the tree, depth first. */
export function* elements(root: XmlElement): Generator<XmlElement> {
  yield root;
  for (const child of root.children) yield* elements(child);
}
