/**
 * The report document as one self-contained HTML page: styles in the page, every chart's
 * SVG inlined (no file beside it needed, nothing fetched), so it can be mailed or attached
 * as it is.
 */
import type { Block, ReportDocument } from './document.js';

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Inline markup of the document model: `code` and **bold**. */
function inline(text: string): string {
  return escapeHtml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
}

/**
 * Ids inside one SVG (vega's clip paths) are only unique within that SVG; prefixed per
 * figure so several inlined charts cannot point at each other's definitions.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(
      /\b(xlink:)?href="#([^"]+)"/g,
      (_match, xlink: string | undefined, id: string) => `${xlink ?? ''}href="#${prefix}-${id}"`,
    );
}

function block(b: Block, index: number): string {
  switch (b.kind) {
    case 'heading':
      return `<h${b.level}>${inline(b.text)}</h${b.level}>`;
    case 'paragraph':
      return `<p>${inline(b.text)}</p>`;
    case 'list': {
      const tag = b.ordered ? 'ol' : 'ul';
      return `<${tag}>${b.items.map((item) => `<li>${inline(item)}</li>`).join('')}</${tag}>`;
    }
    case 'table': {
      const style = (i: number) => (b.align[i] === 'right' ? ' class="num"' : '');
      const head = b.header.map((h, i) => `<th${style(i)}>${inline(h)}</th>`).join('');
      const rows = b.rows
        .map((row) => `<tr>${row.map((c, i) => `<td${style(i)}>${inline(c)}</td>`).join('')}</tr>`)
        .join('\n');
      return `<table><thead><tr>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
    }
    case 'figure':
      return `<figure>${scopeSvgIds(b.svg, `f${index}`)}<figcaption>${inline(b.alt)}</figcaption></figure>`;
    case 'code':
      return `<pre><code>${escapeHtml(b.text)}</code></pre>`;
    default: {
      const unknown: never = b;
      throw new Error(`unknown block ${JSON.stringify(unknown)}`);
    }
  }
}

const styles = `
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; max-width: 1180px; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.8rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; } h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #d6d6d6; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .88em; background: #f4f4f4; padding: 0 .2em; }
pre { background: #f4f4f4; padding: .8rem; overflow-x: auto; }
figure { margin: 1rem 0; overflow-x: auto; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .85rem; }
`.trim();

export function renderHtml(document: ReportDocument): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(document.title)}</title>`,
    `<style>\n${styles}\n</style>`,
    '</head>',
    '<body>',
    `<h1>${inline(document.title)}</h1>`,
    ...document.blocks.map(block),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
