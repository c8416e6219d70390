/**
 * The report as a document model — headings, paragraphs, lists, tables, figures — built
 * once from the figures and rendered twice: Markdown (markdown.ts, charts as relative
 * image links) and one self-contained HTML page (html.ts, charts inlined). Inline text
 * may use `code` and **bold**, which both renderers understand.
 */

export type Align = 'left' | 'right';

export type Block =
  | { readonly kind: 'heading'; readonly level: 1 | 2 | 3; readonly text: string }
  | { readonly kind: 'paragraph'; readonly text: string }
  | { readonly kind: 'list'; readonly items: readonly string[]; readonly ordered?: boolean }
  | {
      readonly kind: 'table';
      readonly header: readonly string[];
      readonly align: readonly Align[];
      readonly rows: ReadonlyArray<readonly string[]>;
    }
  | { readonly kind: 'figure'; readonly file: string; readonly alt: string; readonly svg: string }
  | { readonly kind: 'code'; readonly text: string };

export interface ReportDocument {
  readonly title: string;
  readonly blocks: readonly Block[];
}

/** Builds a document block by block. */
export class DocumentBuilder {
  private readonly blocks: Block[] = [];

  constructor(private readonly title: string) {}

  heading(level: 1 | 2 | 3, text: string): this {
    this.blocks.push({ kind: 'heading', level, text });
    return this;
  }

  paragraph(text: string): this {
    this.blocks.push({ kind: 'paragraph', text });
    return this;
  }

  list(items: readonly string[], ordered = false): this {
    if (items.length > 0) this.blocks.push({ kind: 'list', items, ordered });
    return this;
  }

  table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, align?: readonly Align[]): this {
    this.blocks.push({
      kind: 'table',
      header,
      rows,
      align: align ?? header.map((_, i) => (i === 0 ? 'left' : 'right')),
    });
    return this;
  }

  figure(file: string, alt: string, svg: string): this {
    this.blocks.push({ kind: 'figure', file, alt, svg });
    return this;
  }

  code(text: string): this {
    this.blocks.push({ kind: 'code', text });
    return this;
  }

  build(): ReportDocument {
    return { title: this.title, blocks: [...this.blocks] };
  }
}
