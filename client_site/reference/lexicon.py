"""The shipped radiology lexicon of the report tokenizer (public knowledge, never site data).

English is word-level (lower-case words; capitalisation is carried by marker tokens), Chinese is
character-level. The lists hold the vocabulary of chest-CT reporting: anatomy (lobes, segments,
airways, pleura, mediastinum, heart, vessels, bones, upper abdomen), findings and their
descriptors (density, shape, margin, size, distribution, change), technique and comparison
lines, impressions and follow-up recommendations (Fleischner Society guidelines, Lung-RADS),
the standard structured-report headings, and the bracketed placeholders the ingestion's report
scrubber writes ([NAME], [ID], [DATE]). They are written from standard radiology terminology
(RadLex, the Fleischner Society glossary of terms for thoracic imaging, Chinese chest-CT
reporting conventions); the consortium's report templates use a subset of them.

Digits, ASCII punctuation and CJK punctuation are single tokens of the tokenizer itself
(:mod:`client_site.tokenizer`), not lexicon entries.
"""

from __future__ import annotations

_EN = """
a about above absence absent abnormal abnormality abnormalities accessory acute adenopathy
adjacent adrenal adrenals again aggressive air airspace airway airways all also alveolar an
anatomic and aneurysm angle anterior aorta aortic apex apical appearance appears appropriate
approximately architecture are area areas arch around arterial artery arteries as aspect
aspiration at atelectasis atelectatic atherosclerosis atherosclerotic atrium atypical available
axial azygos base basal basilar be been benign bilateral biopsy bone bones both bronchi
bronchial bronchiectasis bronchiolitis bronchogram bronchograms bronchovascular bronchus bulla
bullae bullous but by calcification calcifications calcified cardiac cardiomegaly
cardiopulmonary carina cavitary cavitation cavity cell central centrilobular change changes
chest chronic clear clinical clinically cm collapse comparison compared compatible compressive
concerning configuration consider considered consistent consolidation consolidations
consolidative contour contrast coronary correlation costophrenic could cyst cystic day
decreased decrease deformity degenerative demonstrated dense density dependent diameter
diaphragm diffuse dilated dilatation discussed disease distal distribution dr edema effusion
effusions emphysema emphysematous enlarged enlargement esophagus evaluation evidence
examination extending extent exudative fibrosis fibrotic findings finding fissure fleischner
focal follow for fracture from fluid fluids further gas given gland glass granuloma granulomatous
ground growth guidelines has have heart hemithorax hemorrhage hiatal hernia hilar hilum
honeycombing hydrothorax identified images imaging impression in increase increased infection
infectious infective inferior inflammatory infiltrate interlobular intermediate interstitial
interval into involving is it its kidney large left lesion lesions level likely limited lingula
linear liver lobar lobe lobes lobular long lower lung lungs lymph lymphadenopathy main malignancy
malignant mass masses may measuring measures mediastinal mediastinum medial middle mild minimal
mm moderate months more mosaic most mucus multifocal multiple narrowing new no node nodes nodular
nodule nodules non noncalcified normal not noted obscured oblique observed of on opacification
opacities opacity or osseous other pattern patent per pericardial pericardium perihilar
perilesional peripheral phase pleura pleural pneumonia pneumonitis pneumothorax possible
posterior predominant predominantly present previous previously prior probability probable
prominent pronounced pulmonary reactive recommend recommended referring region remaining
resolution resolved reticular reticulation right rounded sampling scan scarring segment
segmental segments septal severe setting should since size slightly small society soft solid
spine spiculated stable sternum study subcentimeter subpleural subsegmental superior suggest
suggested suggestive surrounding surveillance suspicious technique the there these thick
thickened thickening thin this thoracic thorax thyroid tissue to trachea traction tree
tuberculosis unchanged unremarkable upper vascular vein vertebral viral visualized volume
wall were which with within without year years ct pet mri name id date none continue patchy made
over seen low high attenuation hyperdense hypodense ill defined well circumscribed irregular smooth
lobulated part semisolid pure cavitating ectatic mosaicism tracheal endobronchial lingular
"""

_ZH = """
一二三四五六七八九十上下中内外前后左右双侧单多少大小
肺叶段支气管胸膜腔纵隔心包影主动脉冠状肋骨椎体锁骨胸骨肝脾肾上腺甲状淋巴结门食道横膈
见未显示明确清楚晰楚略稍较为著主以分布散在范围约大小可疑提考虑建议随访复查结合临床
实变磨玻璃密度结节肿块钙化空洞囊性纤维条索网格蜂窝样扩张狭窄闭塞增厚粘连积液气胸
肺气肿不张膨全受压间质水炎症感染病毒性非典型原体肺炎转移恶性良
实性部分边界光整毛刺分叶征充周围型中心型小叶隔增宽
新发增大增多减少吸收好转变化稳定消失基本已改善进展
轻度中度重度等量少量大量无壁低区提示
检查所见诊断意见平扫增强扫描层厚毫米厘米图像
与前片比较对照常正异常明显通畅纹理走行均匀
心影大小正常增大主动脉壁钙化淋巴结肿大
骨质未见破坏质扫描范围内
已电话通知医师请结合临床
一二三个月后进行步穿刺活检期定
概率及或伴其周邻近组织气支征
斑灶胀能片状病灶肺纹理
"""


def english_words() -> tuple[str, ...]:
    """Lower-case English words of the lexicon, sorted and distinct."""
    return tuple(sorted(set(_EN.split())))


def chinese_characters() -> tuple[str, ...]:
    """Chinese characters of the lexicon, in first-seen order and distinct."""
    return tuple(dict.fromkeys(ch for ch in _ZH if not ch.isspace()))
