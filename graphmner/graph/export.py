"""Exporting tweet graphs for outside viewers (Gephi, yEd, Cytoscape, d3, a browser).

:func:`to_networkx` turns one :class:`~torch_geometric.data.HeteroData` into a
:class:`networkx.MultiDiGraph` whose attributes are plain scalars (what
GraphML/GEXF writers accept): ``node_type``/``edge_type`` strings (never the
GEXF-reserved ``type``), a readable ``label``, ``x``/``y`` layout positions and
node ids like ``'word:0'``. :func:`export` writes it by file suffix.
"""
from __future__ import annotations

import html as html_lib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import networkx as nx
from torch import Tensor
from torch_geometric.data import HeteroData

from . import schema
from .inspect import (
    EDGE_STYLES,
    NODE_COLORS,
    EdgeKey,
    _attr,
    _edge_name,
    _num,
    aux_sources,
    display_graph,
    image_missing,
    layout,
    node_labels,
    visual_backend,
    word_labels,
)

#: Suffixes :func:`export` understands.
FORMATS: tuple[str, ...] = ('.graphml', '.gexf', '.json', '.cyjs', '.html')


def node_id(node_type: str, index: int) -> str:
    """``('word', 0)`` -> ``'word:0'``."""
    return f'{node_type}:{index}'


def _scalar(value):
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def to_networkx(g: HeteroData, edge_weights: Mapping[EdgeKey, Tensor] | None = None
                ) -> nx.MultiDiGraph:
    """One tweet graph as a :class:`networkx.MultiDiGraph` with scalar attributes only.

    Nodes (``'word:0'``, ``'object:2'``, ...): ``node_type``, ``index`` (local
    index), ``label``, ``x``/``y`` (layout of :func:`graphmner.graph.inspect.layout`,
    y up) and per type: word ``tag`` (BIO label), ``label_id``, ``position``;
    image ``missing``, ``image_id``; region/scale/object ``box_x0``..``box_y1``;
    scale ``level``; object ``cls``, ``class_name``, ``score``; aux ``source``.
    Edges (key = edge type name): ``edge_type`` (``'object__grounds__word'``),
    ``relation`` and, for relations in ``edge_weights``, ``weight``.
    Graph attributes: ``image_id``, ``schema_version``, ``text``,
    ``image_missing`` and ``visual_backend`` (what made the visual features).
    Feature vectors are not exported. The relations are those of
    :func:`~graphmner.graph.inspect.display_graph` (the stored ones and those
    built on demand).
    """
    g = display_graph(g)
    G = nx.MultiDiGraph()
    image_id = getattr(g, 'image_id', None)
    G.graph.update(image_id=str(image_id or ''), schema_version=schema.SCHEMA_VERSION,
                   image_missing=image_missing(g), visual_backend=visual_backend(g))
    pos = layout(g)
    labels = node_labels(g)
    tags = word_labels(g)
    sources = aux_sources(g)
    G.graph['text'] = ' '.join(labels.get(schema.WORD, []))
    for node_type in g.node_types:
        n = _num(g, node_type)
        box = _attr(g, node_type, 'box')
        for i in range(n):
            attrs = {'node_type': node_type, 'index': i, 'label': labels[node_type][i],
                     'x': float(pos[node_type][i][0]), 'y': float(pos[node_type][i][1])}
            if node_type == schema.WORD:
                attrs['tag'] = tags[i]
                for key, name in (('y', 'label_id'), ('position', 'position')):
                    value = _attr(g, node_type, key)
                    if value is not None and i < len(value):
                        attrs[name] = int(value[i])
            elif node_type == schema.IMAGE:
                attrs['missing'] = image_missing(g)
                attrs['image_id'] = str(image_id or '')
            elif node_type == schema.AUX:
                attrs['source'] = sources[i]
            if box is not None and i < len(box):
                for name, v in zip(('box_x0', 'box_y0', 'box_x1', 'box_y1'), box[i].tolist()):
                    attrs[name] = float(v)
            if node_type == schema.SCALE:
                level = _attr(g, node_type, 'level')
                if level is not None and i < len(level):
                    attrs['level'] = int(level[i])
            if node_type == schema.OBJECT:
                cls, score = _attr(g, node_type, 'cls'), _attr(g, node_type, 'score')
                attrs['class_name'] = labels[node_type][i]
                if cls is not None and i < len(cls):
                    attrs['cls'] = int(cls[i])
                if score is not None and i < len(score):
                    attrs['score'] = float(score[i])
            G.add_node(node_id(node_type, i), **{k: _scalar(v) for k, v in attrs.items()})
    weights = {_edge_name(k): v for k, v in (edge_weights or {}).items()}
    for edge_type in g.edge_types:
        ei = g[edge_type].get('edge_index')
        if ei is None:
            continue
        src_t, rel, dst_t = edge_type
        name = _edge_name(edge_type)
        w = weights.get(name)
        if w is not None:
            w = w.detach().float().cpu().reshape(-1).tolist() if isinstance(w, Tensor) else list(w)
        for k, (i, j) in enumerate(zip(ei[0].tolist(), ei[1].tolist())):
            attrs = {'edge_type': name, 'relation': rel}
            if w is not None and k < len(w):
                attrs['weight'] = float(w[k])
            G.add_edge(node_id(src_t, i), node_id(dst_t, j), key=name, **attrs)
    return G


def to_node_link(G: nx.MultiDiGraph) -> dict:
    """d3 node-link JSON (``links`` key, as classic d3 force templates expect)."""
    return nx.node_link_data(G, edges='links')


def to_cytoscape(G: nx.MultiDiGraph) -> dict:
    """Cytoscape.js elements JSON with ``position`` from the layout (y down)."""
    data = nx.cytoscape_data(G, name='label')
    for element in data['elements']['nodes']:
        d = element['data']
        element['position'] = {'x': 60.0 * d['x'], 'y': -60.0 * d['y']}
        element['classes'] = d['node_type']
    for element in data['elements']['edges']:
        element['classes'] = element['data']['edge_type']
    return data


def _safe_json(obj) -> str:
    """JSON safe to embed in ``<script>``; no ``://`` anywhere (so a tweet's
    link cannot put a URL in the file)."""
    text = json.dumps(obj, ensure_ascii=True)
    for a, b in (('<', '\\u003c'), ('>', '\\u003e'), ('&', '\\u0026'), ('://', '\\u003a//')):
        text = text.replace(a, b)
    return text


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:13px sans-serif;margin:0;display:flex;height:100vh}
#side{width:270px;padding:8px;overflow:auto;border-right:1px solid #ccc;background:#fafafa}
#main{flex:1;position:relative;overflow:hidden}
svg{width:100%;height:100%;cursor:grab}
.sw{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
#tip{position:absolute;pointer-events:none;background:#fff;border:1px solid #999;padding:4px;
 font:12px monospace;white-space:pre;display:none}
label{display:block}
</style></head><body>
<div id="side"><b>__TITLE__</b><div id="info"></div><h4>relations</h4><div id="rels"></div>
<h4>nodes</h4><div id="types"></div><p>Drag to pan, wheel to zoom, hover for attributes,
drag a node to move it.</p></div>
<div id="main"><div id="canvas"></div><div id="tip"></div></div>
<script type="application/json" id="graph-data">__DATA__</script>
<script>
(function(){
var G=JSON.parse(document.getElementById('graph-data').textContent);
var NC=__NODE_COLORS__, EC=__EDGE_STYLES__, HIDE=__HIDE__;
var S=60, byId={}, shown={};
G.nodes.forEach(function(n){n.px=n.x*S;n.py=-n.y*S;byId[n.id]=n;});
var rels={};G.links.forEach(function(e){rels[e.edge_type]=(rels[e.edge_type]||0)+1;});
var types={};G.nodes.forEach(function(n){types[n.node_type]=(types[n.node_type]||0)+1;});
function esc(s){return String(s).replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/>/g,'&gt;');}
document.getElementById('info').innerHTML='<p>'+esc(G.graph.text||'')+'</p><p>image missing: '+G.graph.image_missing+'</p><p>visual features: '+esc(G.graph.visual_backend||'not recorded')+'</p>';
var rh='';Object.keys(rels).forEach(function(r){shown[r]=HIDE.indexOf(r)<0;
 var c=(EC[r]||['#444'])[0];rh+='<label><input type="checkbox" data-r="'+r+'"'+(shown[r]?' checked':'')+
 '><span class="sw" style="background:'+c+'"></span>'+esc(r)+' ('+rels[r]+')</label>';});
document.getElementById('rels').innerHTML=rh;
var th='';Object.keys(types).forEach(function(t){th+='<div><span class="sw" style="background:'+(NC[t]||'#444')+'"></span>'+esc(t)+' ('+types[t]+')</div>';});
document.getElementById('types').innerHTML=th;
var xs=G.nodes.map(function(n){return n.px;}),ys=G.nodes.map(function(n){return n.py;});
var vb=[Math.min.apply(null,xs)-80,Math.min.apply(null,ys)-80,Math.max.apply(null,xs)-Math.min.apply(null,xs)+240,Math.max.apply(null,ys)-Math.min.apply(null,ys)+160];
var host=document.getElementById('canvas');host.style.height='100%';
function dash(s){return s==':'?'2,3':(s=='--'?'6,3':'');}
function render(){
 var h='<svg viewBox="'+vb.join(' ')+'"><g>';
 G.links.forEach(function(e,k){if(!shown[e.edge_type])return;var a=byId[e.source],b=byId[e.target];
  var st=EC[e.edge_type]||['#444','-'];var w=(e.weight===undefined)?1:e.weight;
  var op=(e.weight===undefined)?0.6:Math.max(0.08,Math.min(1,w));
  var mx=(a.px+b.px)/2,my=(a.py+b.py)/2;if(a.py==b.py&&a.node_type==b.node_type){my-=Math.abs(b.px-a.px)*0.3;}
  h+='<path d="M'+a.px+','+a.py+' Q'+mx+','+my+' '+b.px+','+b.py+'" fill="none" stroke="'+st[0]+'" stroke-opacity="'+op+
   '" stroke-width="'+(e.weight===undefined?1.2:0.5+3*op)+'" stroke-dasharray="'+dash(st[1])+'" data-e="'+k+'"/>';});
 G.nodes.forEach(function(n,k){var r=(n.node_type=='region'||n.node_type=='scale')?3:7;
  h+='<circle cx="'+n.px+'" cy="'+n.py+'" r="'+r+'" fill="'+(NC[n.node_type]||'#444')+'" stroke="#fff" data-n="'+k+'"/>';
  if(r>3){var dy=n.node_type=='word'?20:-10;h+='<text x="'+n.px+'" y="'+(n.py+dy)+'" text-anchor="middle" font-size="11">'+esc(n.label)+
   (n.node_type=='word'&&n.tag&&n.tag!='O'?' ['+esc(n.tag)+']':'')+'</text>';}});
 host.innerHTML=h+'</g></svg>';}
render();
Array.prototype.forEach.call(document.querySelectorAll('#rels input'),function(el){
 el.addEventListener('change',function(){shown[el.getAttribute('data-r')]=el.checked;render();});});
var tip=document.getElementById('tip'),drag=null,last=null;
function scale(){var s=host.querySelector('svg');return vb[2]/s.getBoundingClientRect().width;}
host.addEventListener('mousemove',function(ev){
 var t=ev.target,k=t.getAttribute&&t.getAttribute('data-n'),ek=t.getAttribute&&t.getAttribute('data-e');
 if(drag!==null&&last){var f=scale();if(drag==='pan'){vb[0]-=(ev.clientX-last[0])*f;vb[1]-=(ev.clientY-last[1])*f;}
  else{drag.px+=(ev.clientX-last[0])*f;drag.py+=(ev.clientY-last[1])*f;}last=[ev.clientX,ev.clientY];render();return;}
 var obj=k!==null&&k!==undefined?G.nodes[+k]:(ek!==null&&ek!==undefined?G.links[+ek]:null);
 if(obj){var s='';Object.keys(obj).forEach(function(key){if(key!='px'&&key!='py')s+=key+': '+obj[key]+'\\n';});
  tip.textContent=s;tip.style.display='block';tip.style.left=(ev.offsetX+12)+'px';tip.style.top=(ev.offsetY+12)+'px';}
 else tip.style.display='none';});
host.addEventListener('mousedown',function(ev){var k=ev.target.getAttribute&&ev.target.getAttribute('data-n');
 drag=(k!==null&&k!==undefined)?G.nodes[+k]:'pan';last=[ev.clientX,ev.clientY];ev.preventDefault();});
window.addEventListener('mouseup',function(){drag=null;last=null;});
host.addEventListener('wheel',function(ev){ev.preventDefault();var f=ev.deltaY>0?1.1:1/1.1;
 var cx=vb[0]+vb[2]/2,cy=vb[1]+vb[3]/2;vb[2]*=f;vb[3]*=f;vb[0]=cx-vb[2]/2;vb[1]=cy-vb[3]/2;render();},{passive:false});
})();
</script></body></html>
"""


def to_html(G: nx.MultiDiGraph, title: str | None = None, hide=None) -> str:
    """A self-contained interactive page (inline SVG and JS, nothing loaded from
    the network). The graph is embedded as node-link JSON in
    ``<script type="application/json" id="graph-data">``."""
    from .inspect import HIDDEN_BY_DEFAULT

    hide = [_edge_name(e) for e in (HIDDEN_BY_DEFAULT if hide is None else hide)]
    title = title or f"tweet graph {G.graph.get('image_id', '')}".strip()
    page = _HTML
    for key, value in (('__DATA__', _safe_json(to_node_link(G))),
                       ('__NODE_COLORS__', _safe_json(NODE_COLORS)),
                       ('__EDGE_STYLES__', _safe_json(EDGE_STYLES)),
                       ('__HIDE__', _safe_json(hide)),
                       ('__TITLE__', html_lib.escape(title).replace('://', '&#58;//'))):
        page = page.replace(key, value)
    return page


def _with_viz(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy with GEXF ``viz`` positions and colours, so Gephi opens it laid out."""
    H = G.copy()
    for _, data in H.nodes(data=True):
        rgb = NODE_COLORS.get(data.get('node_type'), '#444444').lstrip('#')
        r, g, b = (int(rgb[k:k + 2], 16) for k in (0, 2, 4))
        data['viz'] = {'position': {'x': 60.0 * data['x'], 'y': 60.0 * data['y'], 'z': 0.0},
                       'color': {'r': r, 'g': g, 'b': b, 'a': 1.0}}
    return H


def export(g: HeteroData | nx.MultiDiGraph, path: str | os.PathLike,
           edge_weights: Mapping[EdgeKey, Tensor] | None = None) -> Path:
    """Writes one tweet graph; the format follows the suffix: ``.graphml``,
    ``.gexf``, ``.json`` (d3 node-link, ``links`` key), ``.cyjs`` (Cytoscape.js
    elements) or ``.html`` (self-contained interactive page). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"Unknown export format '{path.suffix}' for {path}; valid suffixes: "
                         f"{list(FORMATS)}")
    G = g if isinstance(g, nx.Graph) else to_networkx(g, edge_weights=edge_weights)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == '.graphml':
        nx.write_graphml(G, path)
    elif suffix == '.gexf':
        nx.write_gexf(_with_viz(G), path)
    elif suffix == '.json':
        path.write_text(json.dumps(to_node_link(G), indent=1))
    elif suffix == '.cyjs':
        path.write_text(json.dumps(to_cytoscape(G), indent=1))
    else:
        path.write_text(to_html(G), encoding='utf-8')
    return path
