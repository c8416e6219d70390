/** The report document as Markdown (GitHub flavour): charts are relative image links to the SVG files beside it. */
import type { Block, ReportDocument } from './document.js';

/** A table cell on one line, its pipes escaped. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function block(b: Block): string {
  switch (b.kind) {
    case 'heading':
      return `${'#'.repeat(b.level)} ${b.text}`;
    case 'paragraph':
      return b.text;
    case 'list':
      return b.items.map((item, i) => `${b.ordered ? `${i + 1}.` : '-'} ${item}`).join('\n');
    case 'table': {
      const rule = b.align.map((a) => (a === 'right' ? '---:' : '---'));
      return [b.header, rule, ...b.rows].map((row) => `| ${row.map(cell).join(' | ')} |`).join('\n');
    }
    case 'figure':
      return `![${b.alt.replace(/[[\]]/g, '')}](${encodeURI(b.file)})`;
    case 'code':
      return `\`\`\`\n${b.text}\n\`\`\``;
    default: {
      const unknown: never = b;
      throw new Error(`unknown block ${JSON.stringify(unknown)}`);
    }
  }
}

export function renderMarkdown(document: ReportDocument): string {
  return `${[`# ${document.title}`, ...document.blocks.map(block)].join('\n\n')}\n`;
}
